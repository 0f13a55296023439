// Package diagnose explains why a connection to an MQTT broker failed: which step (local
// material, DNS, TCP, TLS, MQTT, round trip), the cause in plain words with its evidence, and
// the fix. Every cause has a stable identifier, listed with its evidence and fix in
// docs/diagnosis.md, so that scripts can act on it.
//
// Explain turns any error from a connect (fennec.Client.Connect, mqttconn.Dial) into a
// Diagnosis; Run performs a connection one step at a time and stops at the first failure,
// as `fennec doctor` does. ExplainHandshake explains a failed TLS handshake, or the first read
// after it (under TLS 1.3 a rejected client certificate shows there), using what a
// pki.HandshakeRecorder saw.
//
// The library never imports this package: a program that wants diagnoses imports it.
package diagnose
