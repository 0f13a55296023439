// Package pki holds everything X.509 and TLS that is not MQTT: building a *tls.Config, loading
// certificates and keys from PEM, DER and C-array buffers, inspecting and converting them,
// verifying chains and key pairs with errors that name the cause, and generating a development
// PKI for brokers and tests.
//
// It depends on the standard library only.
package pki
