package pki_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
	"github.com/fennec-mqtt/fennec/pki"
)

// goServer is a real crypto/tls server on loopback: it completes the handshake, writes
// "hello" and waits for the client to close.
type goServer struct {
	addr string
	errs chan error // one per connection: the server's handshake result
}

func startGoServer(t *testing.T, cfg *tls.Config) *goServer {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &goServer{addr: l.Addr().String(), errs: make(chan error, 16)}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				c.SetDeadline(time.Now().Add(30 * time.Second))
				err := tc.Handshake()
				s.errs <- err
				if err != nil {
					return
				}
				tc.Write([]byte("hello"))
				io.Copy(io.Discard, tc)
			}()
		}
	}()
	return s
}

func serverConfig(t *testing.T, srv *pki.Issued, clientCA *pki.Issued, min, max uint16) *tls.Config {
	t.Helper()
	opts := pki.ServerOptions{Cert: pki.BytesSource(srv.CertPEM, "server.pem"), Key: pki.BytesSource(srv.KeyPEM, "server-key.pem"), MinVersion: min, MaxVersion: max}
	if clientCA != nil {
		opts.ClientCAs = []pki.Source{pki.BytesSource(clientCA.CertPEM, "ca.pem")}
	}
	cfg, err := pki.ServerConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type clientSetup struct {
	ca     *pki.Issued
	client *pki.Issued
	min    uint16
	max    uint16
	name   string
}

func clientConfig(t *testing.T, s clientSetup) (*tls.Config, *pki.HandshakeRecorder) {
	t.Helper()
	rec := &pki.HandshakeRecorder{}
	opts := pki.ClientOptions{MinVersion: s.min, MaxVersion: s.max, ServerName: s.name, Recorder: rec}
	if s.ca != nil {
		opts.CAs = []pki.Source{pki.BytesSource(s.ca.CertPEM, "ca.pem")}
	}
	if s.client != nil {
		opts.Cert = pki.BytesSource(s.client.CertPEM, "client.pem")
		opts.Key = pki.BytesSource(s.client.KeyPEM, "client-key.pem")
	}
	cfg, err := pki.ClientConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, rec
}

// dialAndRead connects, and when the handshake succeeds, reads the first bytes from the server
// (for mosquitto: sends an MQTT CONNECT and reads the CONNACK). It returns the first error.
func dialAndRead(t *testing.T, addr string, cfg *tls.Config, mqtt bool) ([]byte, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 30 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	want := 5
	if mqtt {
		// MQTT 3.1.1 CONNECT, clean session, keepalive 60, empty client identifier [MQTT-3.1.3-6].
		if _, err := c.Write([]byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00}); err != nil {
			return nil, err
		}
		want = 4
	}
	buf := make([]byte, want)
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

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
	f := getFixtures(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, alg := range []string{"ECDSA", "RSA"} {
			t.Run(tls.VersionName(v)+"/"+alg, func(t *testing.T) {
				ca, srv, cli := f.CA, f.Server, f.Client
				if alg == "RSA" {
					ca, srv, cli = f.RSACA, f.ServerRSA, f.ClientRSA
				}
				s := startGoServer(t, serverConfig(t, srv, ca, tls.VersionTLS12, 0))
				var keylog bytes.Buffer
				cfg, rec := clientConfig(t, clientSetup{ca: ca, client: cli, min: v, max: v})
				cfg.KeyLogWriter = &keylog
				got, err := dialAndRead(t, s.addr, cfg, false)
				if err != nil {
					t.Fatalf("dial: %v (%v)", err, pki.ExplainHandshake(err, rec))
				}
				if string(got) != "hello" {
					t.Fatalf("read %q", got)
				}
				if err := <-s.errs; err != nil {
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
	f := getFixtures(t)
	s := startGoServer(t, serverConfig(t, f.Server, nil, tls.VersionTLS12, 0))
	cfg, _ := clientConfig(t, clientSetup{ca: f.CA})
	for i := 0; i < 2; i++ {
		c, err := tls.Dial("tcp", s.addr, cfg)
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
	f := getFixtures(t)
	s := startGoServer(t, serverConfig(t, f.Server, nil, tls.VersionTLS12, 0))
	good, err := pki.ClientConfig(pki.ClientOptions{CAs: []pki.Source{pki.BytesSource(f.CA.CertPEM, "ca")}, Pins: []string{pki.SPKIPin(f.Server.Cert)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialAndRead(t, s.addr, good, false); err != nil {
		t.Fatalf("pinned leaf: %v", err)
	}
	rec := &pki.HandshakeRecorder{}
	bad, _ := pki.ClientConfig(pki.ClientOptions{CAs: []pki.Source{pki.BytesSource(f.CA.CertPEM, "ca")}, Pins: []string{pki.SPKIPin(f.OtherCA.Cert)}, Recorder: rec})
	_, err = dialAndRead(t, s.addr, bad, false)
	var pe *pki.PinError
	if !errors.As(err, &pe) {
		t.Fatalf("wrong pin: %v", err)
	}
	if d := pki.ExplainHandshake(err, rec); d == nil || d.Kind != pki.DiagPin {
		t.Fatalf("diagnosis %+v", d)
	}
	if _, err := pki.ClientConfig(pki.ClientOptions{Pins: []string{"sha256/short"}}); err == nil {
		t.Fatal("bad pin accepted")
	}
}

func TestInsecureSkipVerifyOnlyWhenAsked(t *testing.T) {
	f := getFixtures(t)
	s := startGoServer(t, serverConfig(t, f.ServerOther, nil, tls.VersionTLS12, 0))
	cfg, _ := clientConfig(t, clientSetup{ca: f.CA})
	if _, err := dialAndRead(t, s.addr, cfg, false); err == nil {
		t.Fatal("untrusted server accepted")
	}
	insecure, err := pki.ClientConfig(pki.ClientOptions{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialAndRead(t, s.addr, insecure, false); err != nil {
		t.Fatal(err)
	}
}

func startMosquittoTLS(t *testing.T, f *fixtures) *mosquittotest.Broker {
	t.Helper()
	return startMosquittoWith(t, f.CA, f.Server)
}

// startMosquittoWith runs mosquitto with server certificate srv, requiring client
// certificates issued by ca.
func startMosquittoWith(t *testing.T, ca, srv *pki.Issued) *mosquittotest.Broker {
	t.Helper()
	dir := t.TempDir()
	return mosquittotest.Start(t, mosquittotest.Options{TLS: &mosquittotest.TLS{
		CAFile:             write(t, dir, "ca.pem", ca.CertPEM),
		CertFile:           write(t, dir, "server.pem", srv.CertPEM),
		KeyFile:            write(t, dir, "server-key.pem", srv.KeyPEM),
		RequireCertificate: true,
	}})
}

func TestHandshakeMosquittoRequiringClientCert(t *testing.T) {
	f := getFixtures(t)
	for _, alg := range []string{"ECDSA", "RSA"} {
		ca, srv, cli := f.CA, f.Server, f.Client
		if alg == "RSA" {
			ca, srv, cli = f.RSACA, f.ServerRSA, f.ClientRSA
		}
		b := startMosquittoWith(t, ca, srv)
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			t.Run(alg+"/"+tls.VersionName(v), func(t *testing.T) {
				mosquittoHandshake(t, b, ca, cli, v)
			})
		}
	}
}

func mosquittoHandshake(t *testing.T, b *mosquittotest.Broker, ca, cli *pki.Issued, v uint16) {
	t.Helper()
	cfg, rec := clientConfig(t, clientSetup{ca: ca, client: cli, min: v, max: v})
	got, err := dialAndRead(t, b.TLSAddr, cfg, true)
	if err != nil {
		t.Fatalf("%v: %v", err, pki.ExplainHandshake(err, rec))
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
	f := getFixtures(t)
	cfg := serverConfig(t, f.Server, f.CA, 0, 0)
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
	f := getFixtures(t)
	srv := serverConfig(t, f.Server, nil, tls.VersionTLS12, 0)
	srv.NextProtos = []string{"x-amzn-mqtt-ca", "mqtt"}
	s := startGoServer(t, srv)
	keylog := filepath.Join(t.TempDir(), "keys.log")
	t.Setenv("SSLKEYLOGFILE", keylog)
	rec := &pki.HandshakeRecorder{}
	cfg, err := pki.ClientConfig(pki.ClientOptions{CAs: []pki.Source{pki.BytesSource(f.CA.CertPEM, "ca")}, NextProtos: []string{"x-amzn-mqtt-ca"}, KeyLogFromEnv: true, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialAndRead(t, s.addr, cfg, false); err != nil {
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
	f := getFixtures(t)
	dir := t.TempDir()
	s := startGoServer(t, serverConfig(t, f.Server, nil, tls.VersionTLS12, 0))
	cfg, err := pki.ClientConfig(pki.ClientOptions{
		CAs: []pki.Source{
			pki.FileSource(write(t, dir, "other.pem", f.OtherCA.CertPEM)),
			pki.BytesSource(f.RSACA.Cert.Raw, "rsa-ca.der"),
			pki.FileSource(write(t, dir, "certs_test.h", pki.EncodeC("ca_cert_der", f.CA.Cert.Raw))),
		},
		SystemRoots: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialAndRead(t, s.addr, cfg, false); err != nil {
		t.Fatal(err)
	}
}
