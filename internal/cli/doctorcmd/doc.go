// Package doctorcmd is `fennec doctor`: the step-by-step diagnosis of a connection (DNS, TCP,
// TLS, MQTT) with the cause and the fix of the first step that fails.
package doctorcmd
