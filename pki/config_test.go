package pki_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
	"github.com/fennec-mqtt/fennec/internal/tlstest"
	"github.com/fennec-mqtt/fennec/pki"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

func TestClientConfigDefaults(t *testing.T) {
	cfg, err := pki.ClientConfig(pki.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ClientSessionCache == nil || cfg.InsecureSkipVerify || cfg.RootCAs != nil {
		t.Fatalf("defaults: min=%x cache=%v insecure=%v roots=%v", cfg.MinVersion, cfg.ClientSessionCache, cfg.InsecureSkipVerify, cfg.RootCAs)
	}
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		_, err := pki.ClientConfig(pki.ClientOptions{MinVersion: v})
		var ve *pki.VersionError
		if !errors.As(err, &ve) || !strings.Contains(err.Error(), "below 1.2") {
			t.Fatalf("MinVersion %x: %v", v, err)
		}
	}
	if _, err := pki.ParseVersion("1.1"); err == nil {
		t.Fatal("ParseVersion(1.1) accepted")
	}
	if v, err := pki.ParseVersion("tlsv1.3"); err != nil || v != tls.VersionTLS13 {
		t.Fatal(v, err)
	}
	cfg, _ = pki.ClientConfig(pki.ClientOptions{DisableSessionCache: true})
	if cfg.ClientSessionCache != nil {
		t.Fatal("session cache not disabled")
	}
}

func TestHandshakeGoServerMutualTLS(t *testing.T) {
	f := tlstest.Get(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, alg := range []string{"ECDSA", "RSA"} {
			t.Run(tls.VersionName(v)+"/"+alg, func(t *testing.T) {
				ca, srv, cli := f.CA, f.Server, f.Client
				if alg == "RSA" {
					ca, srv, cli = f.RSACA, f.ServerRSA, f.ClientRSA
				}
				s := tlstest.StartServer(t, tlstest.ServerConfig(t, srv, ca, tls.VersionTLS12, 0))
				var keylog bytes.Buffer
				cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: ca, Client: cli, Min: v, Max: v})
				cfg.KeyLogWriter = &keylog
				got, err := tlstest.DialAndRead(t, s.Addr, cfg, false)
				if err != nil {
					t.Fatalf("dial: %v (%v)", err, rec.Info())
				}
				if string(got) != "hello" {
					t.Fatalf("read %q", got)
				}
				if err := <-s.Errs; err != nil {
					t.Fatalf("server: %v", err)
				}
				info := rec.Info()
				if !info.CertificateRequested || !info.CertificateSent || info.Version != v {
					t.Fatalf("recorded %+v", info)
				}
				if len(info.AcceptableCAs) != 1 || !strings.Contains(info.AcceptableCAs[0], ca.Cert.Subject.CommonName) {
					t.Fatalf("acceptable CAs = %v", info.AcceptableCAs)
				}
				if !bytes.Contains(keylog.Bytes(), []byte("CLIENT_")) {
					t.Fatal("key log is empty")
				}
			})
		}
	}
}

func TestSessionResumption(t *testing.T) {
	f := tlstest.Get(t)
	s := tlstest.StartServer(t, tlstest.ServerConfig(t, f.Server, nil, tls.VersionTLS12, 0))
	cfg, _ := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: f.CA})
	for i := 0; i < 2; i++ {
		c, err := tls.Dial("tcp", s.Addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		// TLS 1.3 tickets arrive after the handshake: read the server's first bytes.
		buf := make([]byte, 5)
		io.ReadFull(c, buf)
		resumed := c.ConnectionState().DidResume
		c.Close()
		if i == 1 && !resumed {
			t.Fatal("second connection did not resume the session")
		}
	}
}

func TestSPKIPin(t *testing.T) {
	f := tlstest.Get(t)
	s := tlstest.StartServer(t, tlstest.ServerConfig(t, f.Server, nil, tls.VersionTLS12, 0))
	good, err := pki.ClientConfig(pki.ClientOptions{CAs: []pki.Source{pki.BytesSource(f.CA.CertPEM, "ca")}, Pins: []string{pki.SPKIPin(f.Server.Cert)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tlstest.DialAndRead(t, s.Addr, good, false); err != nil {
		t.Fatalf("pinned leaf: %v", err)
	}
	rec := &pki.HandshakeRecorder{}
	bad, _ := pki.ClientConfig(pki.ClientOptions{CAs: []pki.Source{pki.BytesSource(f.CA.CertPEM, "ca")}, Pins: []string{pki.SPKIPin(f.OtherCA.Cert)}, Recorder: rec})
	_, err = tlstest.DialAndRead(t, s.Addr, bad, false)
	var pe *pki.PinError
	if !errors.As(err, &pe) {
		t.Fatalf("wrong pin: %v", err)
	}
	if _, err := pki.ClientConfig(pki.ClientOptions{Pins: []string{"sha256/short"}}); err == nil {
		t.Fatal("bad pin accepted")
	}
}

func TestInsecureSkipVerifyOnlyWhenAsked(t *testing.T) {
	f := tlstest.Get(t)
	s := tlstest.StartServer(t, tlstest.ServerConfig(t, f.ServerOther, nil, tls.VersionTLS12, 0))
	cfg, _ := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: f.CA})
	if _, err := tlstest.DialAndRead(t, s.Addr, cfg, false); err == nil {
		t.Fatal("untrusted server accepted")
	}
	insecure, err := pki.ClientConfig(pki.ClientOptions{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tlstest.DialAndRead(t, s.Addr, insecure, false); err != nil {
		t.Fatal(err)
	}
}

func TestHandshakeMosquittoRequiringClientCert(t *testing.T) {
	f := tlstest.Get(t)
	for _, alg := range []string{"ECDSA", "RSA"} {
		ca, srv, cli := f.CA, f.Server, f.Client
		if alg == "RSA" {
			ca, srv, cli = f.RSACA, f.ServerRSA, f.ClientRSA
		}
		b := tlstest.StartMosquitto(t, ca, srv)
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			t.Run(alg+"/"+tls.VersionName(v), func(t *testing.T) {
				mosquittoHandshake(t, b, ca, cli, v)
			})
		}
	}
}

func mosquittoHandshake(t *testing.T, b *mosquittotest.Broker, ca, cli *devpki.Issued, v uint16) {
	t.Helper()
	cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: ca, Client: cli, Min: v, Max: v})
	got, err := tlstest.DialAndRead(t, b.TLSAddr, cfg, true)
	if err != nil {
		t.Fatalf("%v: %v", err, rec.Info())
	}
	if !bytes.Equal(got, []byte{0x20, 0x02, 0x00, 0x00}) {
		t.Fatalf("CONNACK = % x", got)
	}
	info := rec.Info()
	if info.Version != v || !info.CertificateRequested || !info.CertificateSent {
		t.Fatalf("recorded %+v", info)
	}
	// mosquitto 2.0 loads its cafile with SSL_CTX_load_verify_locations only, so its
	// CertificateRequest names no CAs; the recorder must report that, not invent one.
	if len(info.AcceptableCAs) != 0 {
		t.Fatalf("mosquitto's acceptable CAs = %v", info.AcceptableCAs)
	}
}

func TestServerConfigDefaults(t *testing.T) {
	f := tlstest.Get(t)
	cfg := tlstest.ServerConfig(t, f.Server, f.CA, 0, 0)
	if cfg.MinVersion != tls.VersionTLS13 || cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil {
		t.Fatalf("min=%x auth=%v", cfg.MinVersion, cfg.ClientAuth)
	}
	_, err := pki.ServerConfig(pki.ServerOptions{Cert: pki.BytesSource(f.Server.CertPEM, "s"), Key: pki.BytesSource(f.Client.KeyPEM, "k")})
	var ke *pki.KeyMismatchError
	if !errors.As(err, &ke) {
		t.Fatalf("mismatched server key: %v", err)
	}
	if _, err := pki.ServerConfig(pki.ServerOptions{Cert: pki.BytesSource(f.Server.CertPEM, "s"), Key: pki.BytesSource(f.Server.KeyPEM, "k"), MinVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("TLS 1.1 server accepted")
	}
}

func TestALPNAndKeyLogFromEnv(t *testing.T) {
	f := tlstest.Get(t)
	srv := tlstest.ServerConfig(t, f.Server, nil, tls.VersionTLS12, 0)
	srv.NextProtos = []string{"x-amzn-mqtt-ca", "mqtt"}
	s := tlstest.StartServer(t, srv)
	keylog := filepath.Join(t.TempDir(), "keys.log")
	t.Setenv("SSLKEYLOGFILE", keylog)
	rec := &pki.HandshakeRecorder{}
	cfg, err := pki.ClientConfig(pki.ClientOptions{CAs: []pki.Source{pki.BytesSource(f.CA.CertPEM, "ca")}, NextProtos: []string{"x-amzn-mqtt-ca"}, KeyLogFromEnv: true, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tlstest.DialAndRead(t, s.Addr, cfg, false); err != nil {
		t.Fatal(err)
	}
	if got := rec.Info().ALPN; got != "x-amzn-mqtt-ca" {
		t.Fatalf("ALPN = %q", got)
	}
	data, err := os.ReadFile(keylog)
	if err != nil || !bytes.Contains(data, []byte("CLIENT_")) {
		t.Fatalf("key log %q: %v", data, err)
	}
	if st, _ := os.Stat(keylog); st.Mode().Perm() != 0o600 {
		t.Fatalf("key log mode %v", st.Mode().Perm())
	}
}

// Several CA sources, in different forms (PEM file, DER bytes, a C header), plus the system
// roots: the server's CA is found among them.
func TestSeveralCAs(t *testing.T) {
	f := tlstest.Get(t)
	dir := t.TempDir()
	s := tlstest.StartServer(t, tlstest.ServerConfig(t, f.Server, nil, tls.VersionTLS12, 0))
	cfg, err := pki.ClientConfig(pki.ClientOptions{
		CAs: []pki.Source{
			pki.FileSource(tlstest.Write(t, dir, "other.pem", f.OtherCA.CertPEM)),
			pki.BytesSource(f.RSACA.Cert.Raw, "rsa-ca.der"),
			pki.FileSource(tlstest.Write(t, dir, "certs_test.h", pki.EncodeC("ca_cert_der", f.CA.Cert.Raw))),
		},
		SystemRoots: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tlstest.DialAndRead(t, s.Addr, cfg, false); err != nil {
		t.Fatal(err)
	}
}
