package diagnose_test

import (
	"bytes"
	"crypto/tls"
	"testing"

	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/diagnose"
	"github.com/fennec-mqtt/fennec/internal/tlstest"
	"github.com/fennec-mqtt/fennec/pki"
)

// The embedded broker (mochi-mqtt, Go TLS requiring client certificates), with certificate
// files loaded by ClientConfig: TLS 1.2 and 1.3, then the failures a device meets most.
func TestHandshakeEmbeddedBroker(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{TLSMinVersion: tls.VersionTLS12})
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			rec := &pki.HandshakeRecorder{}
			cfg, err := pki.ClientConfig(pki.ClientOptions{
				CAs:  []pki.Source{pki.FileSource(b.CAFile)},
				Cert: pki.FileSource(b.ClientCert), Key: pki.FileSource(b.ClientKey),
				ServerName: "localhost", MinVersion: v, MaxVersion: v, Recorder: rec,
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := tlstest.DialAndRead(t, b.TLSAddr, cfg, true)
			if err != nil {
				t.Fatalf("%v\n%v", err, rec.Info())
			}
			if !bytes.Equal(got, []byte{0x20, 0x02, 0x00, 0x00}) {
				t.Fatalf("CONNACK = % x", got)
			}
			info := rec.Info()
			if info.Version != v || !info.CertificateSent || len(info.AcceptableCAs) != 1 {
				t.Fatalf("recorded %+v", info)
			}
		})
	}
	t.Run("no client certificate", func(t *testing.T) {
		rec := &pki.HandshakeRecorder{}
		cfg, _ := pki.ClientConfig(pki.ClientOptions{CAs: []pki.Source{pki.FileSource(b.CAFile)}, ServerName: "localhost", Recorder: rec})
		_, err := tlstest.DialAndRead(t, b.TLSAddr, cfg, true)
		expectDiagnosis(t, err, rec, diagnose.DiagClientCertMissing, "Fennec Development CA")
	})
	t.Run("certificate from another CA", func(t *testing.T) {
		f := tlstest.Get(t)
		rec := &pki.HandshakeRecorder{}
		cfg, _ := pki.ClientConfig(pki.ClientOptions{CAs: []pki.Source{pki.FileSource(b.CAFile)}, ServerName: "localhost", Recorder: rec,
			Cert: pki.BytesSource(f.Client.CertPEM, "c"), Key: pki.BytesSource(f.Client.KeyPEM, "k")})
		_, err := tlstest.DialAndRead(t, b.TLSAddr, cfg, true)
		expectDiagnosis(t, err, rec, diagnose.DiagClientCertRejected, "CN=device-1", "Fennec Development CA")
	})
	t.Run("wrong CA for the server", func(t *testing.T) {
		f := tlstest.Get(t)
		rec := &pki.HandshakeRecorder{}
		cfg, _ := pki.ClientConfig(pki.ClientOptions{CAs: []pki.Source{pki.BytesSource(f.CA.CertPEM, "ca")}, ServerName: "localhost", Recorder: rec})
		_, err := tlstest.DialAndRead(t, b.TLSAddr, cfg, true)
		expectDiagnosis(t, err, rec, diagnose.DiagUnknownAuthority, "Fennec Development CA", "Test Root CA")
	})
}
