package tlstest

import (
	"testing"

	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

// StartMosquitto runs mosquitto with server certificate srv, requiring client certificates
// issued by ca.
func StartMosquitto(t *testing.T, ca, srv *devpki.Issued) *mosquittotest.Broker {
	t.Helper()
	dir := t.TempDir()
	return mosquittotest.Start(t, mosquittotest.Options{TLS: &mosquittotest.TLS{
		CAFile:             Write(t, dir, "ca.pem", ca.CertPEM),
		CertFile:           Write(t, dir, "server.pem", srv.CertPEM),
		KeyFile:            Write(t, dir, "server-key.pem", srv.KeyPEM),
		RequireCertificate: true,
	}})
}
