// Package tlstest holds test support for TLS: a PKI generated once per test binary (good and
// wrong CAs, servers, clients, expired and not-yet-valid certificates) and a crypto/tls server
// on loopback. It is imported only from tests.
package tlstest
