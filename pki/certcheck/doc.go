// Package certcheck checks certificates and keys that package pki has loaded: Check reports on
// a whole set (which key matches which certificate, which certificates chain to the CA, arrays
// whose names disagree with their contents), Verify checks one chain for a host and a usage
// with errors that name the cause, Inspect describes a certificate, and ChainOrder orders a
// bundle. fennec cert check, inspect and verify are built on it.
//
// It does not load or convert (package pki) nor explain a failed connection (package
// diagnose).
package certcheck
