package democmd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"

	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
)

// startDemoBroker starts the embedded broker with TLS 1.3 and mutual TLS on a free loopback port
// and a throwaway PKI, and points spec at it. It returns a description for the demo's output.
func startDemoBroker(ctx context.Context, spec *cmdutil.ConnSpec) (*cmdutil.ConnSpec, string, func(), error) {
	p, clientTLS, err := demoPKI(spec)
	if err != nil {
		return nil, "", nil, err
	}
	srvCert, err := tls.X509KeyPair(p.Server.CertPEM, p.Server.KeyPEM)
	if err != nil {
		return nil, "", nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.CA.Cert)
	b, err := broker.New(broker.Options{Listeners: []broker.Listener{{
		Name: "tls",
		URL:  "tls://127.0.0.1:0",
		TLS:  &broker.TLS{Certificate: &srvCert, ClientCAs: pool, RequireClientCert: true, MinVersion: tls.VersionTLS13},
	}}})
	if err != nil {
		return nil, "", nil, err
	}
	if err := b.Start(ctx); err != nil {
		return nil, "", nil, err
	}
	addr := b.Addr()
	spec.Server = "mqtts://" + addr
	spec.Host, spec.Port = cmdutil.SplitHostPort(addr)
	spec.TLS = clientTLS
	var sb strings.Builder
	fmt.Fprintf(&sb, "  pki        throwaway CA %q, server certificate for localhost and 127.0.0.1,\n", p.CA.Cert.Subject.CommonName)
	fmt.Fprintf(&sb, "             client certificate %q (ECDSA P-256)\n", p.Client().Cert.Subject.CommonName)
	fmt.Fprintf(&sb, "  broker     embedded broker on %s: TLS 1.3 only, client certificate required\n", spec.Server)
	return spec, sb.String(), func() { b.Close() }, nil
}
