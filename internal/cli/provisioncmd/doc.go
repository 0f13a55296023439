// Package provisioncmd is `fennec provision`: AWS IoT fleet provisioning by claim, saving the
// certificate and key it is given.
package provisioncmd
