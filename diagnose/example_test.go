package diagnose_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/fennec-mqtt/fennec/diagnose"
	"github.com/fennec-mqtt/fennec/pki"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

// ExplainHandshake turns a failed handshake into a cause and a fix. Here the broker's
// certificate comes from a CA the client does not trust.
func ExampleExplainHandshake() {
	trusted, _ := devpki.Generate(devpki.Options{})
	other, _ := devpki.Generate(devpki.Options{})
	srvCfg, _ := pki.ServerConfig(pki.ServerOptions{
		Cert: pki.BytesSource(other.Server.CertPEM, "server.pem"),
		Key:  pki.BytesSource(other.Server.KeyPEM, "server-key.pem"),
	})
	l, _ := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()

	rec := &pki.HandshakeRecorder{}
	cfg, _ := pki.ClientConfig(pki.ClientOptions{CAs: []pki.Source{pki.BytesSource(trusted.CA.CertPEM, "ca.pem")}, Recorder: rec})
	_, err := tls.Dial("tcp", l.Addr().String(), cfg)
	d := diagnose.ExplainHandshake(err, rec)
	fmt.Println(d.Step, d.Kind)
	// Output: tls unknown-authority
}

// Run checks a connection one step at a time; here nothing listens on the port.
func ExampleRun() {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r := diagnose.Run(context.Background(), diagnose.Target{Host: "127.0.0.1", Port: port})
	for _, s := range r.Steps {
		fmt.Println(s.Step, s.OK)
	}
	fmt.Println(r.Failed.Kind)
	// Output:
	// local true
	// dns true
	// tcp false
	// tcp-refused
}
