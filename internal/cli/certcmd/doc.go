// Package certcmd is `fennec cert`: make a development PKI, inspect and check certificates
// and keys (gen, verify, inspect, check: PEM, DER, C arrays such as certs_test.h), and convert
// between those forms (convert).
package certcmd
