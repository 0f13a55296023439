package certcheck_test

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log"

	"github.com/fennec-mqtt/fennec/pki/certcheck"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

// Verify a server certificate for the host a client dials: the name the certificate does not
// hold is named, with the names it does hold, instead of x509's generic error.
func ExampleVerify() {
	p, err := devpki.Generate(devpki.Options{})
	if err != nil {
		log.Fatal(err)
	}
	opts := certcheck.VerifyOptions{Roots: []*x509.Certificate{p.CA.Cert}, Usage: certcheck.UsageServer}
	for _, host := range []string{"localhost", "broker.example.com"} {
		opts.Host = host
		err := certcheck.Verify(p.Server.Cert, opts)
		var he *certcheck.HostnameError
		switch {
		case err == nil:
			fmt.Println(host + ": ok")
		case errors.As(err, &he):
			fmt.Printf("%s: not in the certificate, which names %v\n", he.Host, he.Names)
		default:
			fmt.Println(host+":", err)
		}
	}
	// A client certificate is not for a server.
	opts.Host = ""
	var ue *certcheck.UsageError
	fmt.Println("client certificate as a server's:", errors.As(certcheck.Verify(p.Client().Cert, opts), &ue))
	// Output:
	// localhost: ok
	// broker.example.com: not in the certificate, which names [localhost 127.0.0.1 ::1]
	// client certificate as a server's: true
}
