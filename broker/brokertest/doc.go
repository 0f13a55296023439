// Package brokertest starts Fennec's embedded broker for a test: on free loopback ports, with a
// throwaway development PKI written to the test's temporary directory, stopped when the test ends.
// It is for tests only: a broker to run is broker.New, or fennec broker.
//
//	b := brokertest.Start(t, brokertest.Options{})
//	// b.TLSAddr speaks TLS 1.3 and requires a client certificate signed by b.Files.CA;
//	// b.ClientCert / b.ClientKey are such a certificate for the identity "fennec-client".
//	cfg := b.ClientTLSConfig("fennec-client")
package brokertest
