// Package archtest keeps Fennec's layering visible: it lists each package's imports with
// `go list` and fails when a package imports one that sits above it (see docs/architecture.md).
// It judges non-test imports only: tests may use peers and helpers from any layer.
package archtest
