// Package mosquittotest starts a real mosquitto broker for interop tests: on free loopback ports,
// with an optional TLS listener, stopped when the test ends.
//
// mosquitto is a real peer, not a mock: when it is not installed the test fails (make test
// installs it). Set FENNEC_SKIP_MOSQUITTO=1 to skip these tests on a machine that cannot have it.
package mosquittotest
