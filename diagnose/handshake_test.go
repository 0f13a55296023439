package diagnose_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/diagnose"
	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
	"github.com/fennec-mqtt/fennec/internal/tlstest"
	"github.com/fennec-mqtt/fennec/pki"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

// expectDiagnosis asserts that ExplainHandshake names the cause: the right kind, and a cause
// text that contains every one of want.
func expectDiagnosis(t *testing.T, err error, rec *pki.HandshakeRecorder, kind string, want ...string) *diagnose.Diagnosis {
	t.Helper()
	if err == nil {
		t.Fatalf("connection succeeded; want a %s failure", kind)
	}
	d := diagnose.ExplainHandshake(err, rec)
	if d == nil {
		t.Fatalf("no diagnosis for %v", err)
	}
	if d.Step != "tls" || d.Kind != kind {
		t.Fatalf("diagnosis kind %q for %v; want %q\n%s", d.Kind, err, kind, d)
	}
	for _, w := range want {
		if !strings.Contains(d.Cause, w) {
			t.Errorf("cause %q does not mention %q", d.Cause, w)
		}
	}
	if d.Fix == "" {
		t.Error("no fix")
	}
	t.Logf("%v\n%s", err, d)
	return d
}

func TestExplainUnknownAuthority(t *testing.T) {
	f := tlstest.Get(t)
	s := tlstest.StartServer(t, tlstest.ServerConfig(t, f.ServerOther, nil, tls.VersionTLS12, 0))
	cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: f.CA})
	_, err := tlstest.DialAndRead(t, s.Addr, cfg, false)
	d := expectDiagnosis(t, err, rec, diagnose.DiagUnknownAuthority, "issued by CN=Other Root CA", "CN=Test Root CA")
	if !strings.Contains(d.Fix, "Other Root CA") {
		t.Errorf("fix %q should name the CA to use", d.Fix)
	}
}

// The CA was regenerated: same name, different key.
func TestExplainUnknownAuthoritySameName(t *testing.T) {
	f := tlstest.Get(t)
	twin, err := devpki.Issue(devpki.CertSpec{CommonName: "Test Root CA", IsCA: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := tlstest.StartServer(t, tlstest.ServerConfig(t, f.Server, nil, tls.VersionTLS12, 0))
	cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: twin})
	_, err = tlstest.DialAndRead(t, s.Addr, cfg, false)
	expectDiagnosis(t, err, rec, diagnose.DiagUnknownAuthority, "different CA with the same name")
}

func TestExplainHostnameMismatch(t *testing.T) {
	f := tlstest.Get(t)
	s := tlstest.StartServer(t, tlstest.ServerConfig(t, f.ServerWrongSAN, nil, tls.VersionTLS12, 0))
	cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: f.CA, Name: "localhost"})
	_, err := tlstest.DialAndRead(t, s.Addr, cfg, false)
	expectDiagnosis(t, err, rec, diagnose.DiagHostname, "broker.example.com", `"localhost"`)
}

func TestExplainExpiredServerCertificate(t *testing.T) {
	f := tlstest.Get(t)
	s := tlstest.StartServer(t, tlstest.ServerConfig(t, f.ExpiredServer, nil, tls.VersionTLS12, 0))
	cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: f.CA})
	_, err := tlstest.DialAndRead(t, s.Addr, cfg, false)
	expectDiagnosis(t, err, rec, diagnose.DiagExpired, "expired on "+f.ExpiredServer.Cert.NotAfter.UTC().Format("2006-01-02"))
}

func TestExplainNotYetValidServerCertificate(t *testing.T) {
	f := tlstest.Get(t)
	s := tlstest.StartServer(t, tlstest.ServerConfig(t, f.FutureServer, nil, tls.VersionTLS12, 0))
	cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: f.CA})
	_, err := tlstest.DialAndRead(t, s.Addr, cfg, false)
	expectDiagnosis(t, err, rec, diagnose.DiagExpired, "not valid before "+f.FutureServer.Cert.NotBefore.UTC().Format("2006-01-02"))
}

// A mismatched client key is caught when the configuration is built, before any connection.
func TestClientConfigMismatchedKey(t *testing.T) {
	f := tlstest.Get(t)
	_, err := pki.ClientConfig(pki.ClientOptions{Cert: pki.BytesSource(f.Client.CertPEM, "device.pem"), Key: pki.BytesSource(f.Stray.KeyPEM, "device-key.pem")})
	var ke *pki.KeyMismatchError
	if !errors.As(err, &ke) || !strings.Contains(err.Error(), "device-key.pem does not match the certificate device.pem") {
		t.Fatalf("err = %v", err)
	}
}

// A device that booted without RTC or NTP: its clock says 1970.
func TestExplainUnsetClock(t *testing.T) {
	f := tlstest.Get(t)
	s := tlstest.StartServer(t, tlstest.ServerConfig(t, f.Server, nil, tls.VersionTLS12, 0))
	rec := &pki.HandshakeRecorder{}
	cfg, err := pki.ClientConfig(pki.ClientOptions{CAs: []pki.Source{pki.BytesSource(f.CA.CertPEM, "ca")}, Recorder: rec,
		Time: func() time.Time { return time.Unix(86400, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = tlstest.DialAndRead(t, s.Addr, cfg, false)
	expectDiagnosis(t, err, rec, diagnose.DiagExpired, "1970-01-02", "device clock is probably unset")
}

func TestExplainProtocolVersionMismatch(t *testing.T) {
	f := tlstest.Get(t)
	t.Run("server 1.2 only, client 1.3 only", func(t *testing.T) {
		s := tlstest.StartServer(t, tlstest.ServerConfig(t, f.Server, nil, tls.VersionTLS12, tls.VersionTLS12))
		cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: f.CA, Min: tls.VersionTLS13})
		_, err := tlstest.DialAndRead(t, s.Addr, cfg, false)
		expectDiagnosis(t, err, rec, diagnose.DiagVersion, "TLS version")
	})
	t.Run("server 1.3 only, client 1.2 only", func(t *testing.T) {
		s := tlstest.StartServer(t, tlstest.ServerConfig(t, f.Server, nil, tls.VersionTLS13, 0))
		cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: f.CA, Max: tls.VersionTLS12})
		_, err := tlstest.DialAndRead(t, s.Addr, cfg, false)
		expectDiagnosis(t, err, rec, diagnose.DiagVersion, "TLS version")
	})
	// A legacy server (pki.ServerConfig refuses to build one, so crypto/tls directly): the
	// default client configuration refuses TLS 1.0 and 1.1 on the wire.
	t.Run("server 1.0 to 1.1, client default", func(t *testing.T) {
		pair, err := tls.X509KeyPair(f.Server.CertPEM, f.Server.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		s := tlstest.StartServer(t, &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: f.CA})
		_, err = tlstest.DialAndRead(t, s.Addr, cfg, false)
		expectDiagnosis(t, err, rec, diagnose.DiagVersion, "TLS version")
		if serr := <-s.Errs; serr == nil {
			t.Fatal("the server completed a handshake")
		}
	})
}

// mosquitto with tls_version tlsv1.3 (a minimum) and a client that stops at TLS 1.2.
func TestExplainProtocolVersionMosquitto(t *testing.T) {
	f := tlstest.Get(t)
	dir := t.TempDir()
	b := mosquittotest.Start(t, mosquittotest.Options{TLS: &mosquittotest.TLS{
		CAFile:   tlstest.Write(t, dir, "ca.pem", f.CA.CertPEM),
		CertFile: tlstest.Write(t, dir, "server.pem", f.Server.CertPEM),
		KeyFile:  tlstest.Write(t, dir, "server-key.pem", f.Server.KeyPEM),
		Version:  "tlsv1.3",
	}})
	cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: f.CA, Client: f.Client, Max: tls.VersionTLS12})
	_, err := tlstest.DialAndRead(t, b.TLSAddr, cfg, true)
	expectDiagnosis(t, err, rec, diagnose.DiagVersion, "TLS version", "TLS 1.2 only")
}

func TestExplainClientCertificateMissing(t *testing.T) {
	f := tlstest.Get(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run("go/"+tls.VersionName(v), func(t *testing.T) {
			s := tlstest.StartServer(t, tlstest.ServerConfig(t, f.Server, f.CA, tls.VersionTLS12, 0))
			cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: f.CA, Min: v, Max: v})
			_, err := tlstest.DialAndRead(t, s.Addr, cfg, false)
			// The Go server names its client CAs: the diagnosis passes them on.
			expectDiagnosis(t, err, rec, diagnose.DiagClientCertMissing, "none", "CN=Test Root CA")
		})
	}
	b := tlstest.StartMosquitto(t, f.CA, f.Server)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run("mosquitto/"+tls.VersionName(v), func(t *testing.T) {
			cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: f.CA, Min: v, Max: v})
			_, err := tlstest.DialAndRead(t, b.TLSAddr, cfg, true)
			expectDiagnosis(t, err, rec, diagnose.DiagClientCertMissing, "client certificate")
		})
	}
}

// The server does not trust the CA of our client certificate. Under TLS 1.3 the client's
// handshake has already succeeded: the rejection arrives on the first read, as an alert or a
// reset (PEERS.md); both must be explained.
func TestExplainClientCertificateRejected(t *testing.T) {
	f := tlstest.Get(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run("go/"+tls.VersionName(v), func(t *testing.T) {
			s := tlstest.StartServer(t, tlstest.ServerConfig(t, f.Server, f.CA, tls.VersionTLS12, 0))
			cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: f.CA, Client: f.ClientOther, Min: v, Max: v})
			_, err := tlstest.DialAndRead(t, s.Addr, cfg, false)
			expectDiagnosis(t, err, rec, diagnose.DiagClientCertRejected, "CN=device-other", "Other Root CA")
			if serr := <-s.Errs; serr == nil {
				t.Fatal("server accepted the client certificate")
			}
		})
	}
	b := tlstest.StartMosquitto(t, f.CA, f.Server)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run("mosquitto/"+tls.VersionName(v), func(t *testing.T) {
			cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: f.CA, Client: f.ClientOther, Min: v, Max: v})
			_, err := tlstest.DialAndRead(t, b.TLSAddr, cfg, true)
			d := expectDiagnosis(t, err, rec, diagnose.DiagClientCertRejected, "CN=device-other")
			if v == tls.VersionTLS13 && !strings.Contains(d.Cause, "TLS 1.3") {
				t.Errorf("TLS 1.3 cause should explain the late rejection: %s", d.Cause)
			}
		})
	}
	t.Run("expired client certificate", func(t *testing.T) {
		s := tlstest.StartServer(t, tlstest.ServerConfig(t, f.Server, f.CA, tls.VersionTLS12, 0))
		cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: f.CA, Client: f.Expired, Max: tls.VersionTLS12})
		_, err := tlstest.DialAndRead(t, s.Addr, cfg, false)
		expectDiagnosis(t, err, rec, diagnose.DiagClientCertRejected, "CN=device-expired", "expired on "+f.Expired.Cert.NotAfter.UTC().Format("2006-01-02"))
	})
}

// A server that resets the connection right after the TLS 1.3 handshake (what a broker that
// rejects the client certificate, or AWS IoT refusing a device, may do). Scripted on purpose:
// the timing of a real peer decides between alert and reset.
func TestExplainResetAfterHandshake(t *testing.T) {
	f := tlstest.Get(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srvCfg := tlstest.ServerConfig(t, f.Server, nil, tls.VersionTLS13, 0)
	srvCfg.ClientAuth = tls.RequestClientCert
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		tc := tls.Server(c, srvCfg)
		if tc.Handshake() == nil {
			c.(*net.TCPConn).SetLinger(0) // close with RST
		}
		c.Close()
	}()
	cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: f.CA, Client: f.Client})
	_, err = tlstest.DialAndRead(t, l.Addr().String(), cfg, false)
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Fatalf("err = %v; want a reset", err)
	}
	expectDiagnosis(t, err, rec, diagnose.DiagClientCertRejected, "right after the handshake", "CN=device-1", "TLS 1.3")
}

func TestExplainEOFDuringHandshake(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 5)
			io.ReadFull(c, buf) // read the start of the ClientHello, then hang up
			c.Close()
		}
	}()
	f := tlstest.Get(t)
	cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: f.CA})
	_, err = tlstest.DialAndRead(t, l.Addr().String(), cfg, false)
	d := expectDiagnosis(t, err, rec, diagnose.DiagEOFDuringHandshake, "during the TLS handshake")
	if !strings.Contains(d.Fix, "SNI") {
		t.Errorf("fix should mention SNI: %s", d.Fix)
	}
}

// A config reused for a reconnect must not explain the new failure with the old handshake.
func TestRecorderForgetsPreviousHandshake(t *testing.T) {
	f := tlstest.Get(t)
	good := tlstest.StartServer(t, tlstest.ServerConfig(t, f.Server, f.CA, tls.VersionTLS12, 0))
	cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: f.CA, Client: f.Client, Name: "localhost"})
	if _, err := tlstest.DialAndRead(t, good.Addr, cfg, false); err != nil {
		t.Fatal(err)
	}
	if info := rec.Info(); !info.Verified || !info.CertificateRequested {
		t.Fatalf("first handshake not recorded: %+v", info)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Close()
		}
	}()
	_, err = tlstest.DialAndRead(t, l.Addr().String(), cfg, false)
	expectDiagnosis(t, err, rec, diagnose.DiagEOFDuringHandshake, "during the TLS handshake")
	if info := rec.Info(); info.Verified || info.CertificateRequested {
		t.Fatalf("stale record: %+v", info)
	}
}

// Under TLS 1.2 a close after a completed handshake is a refusal at the next layer (AWS IoT
// closes the connection this way when the policy denies iot:Connect), not a certificate problem.
func TestExplainClosedAfterCompletedHandshake(t *testing.T) {
	f := tlstest.Get(t)
	srv := tlstest.ServerConfig(t, f.Server, f.CA, tls.VersionTLS12, tls.VersionTLS12)
	l, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		if c.(*tls.Conn).Handshake() == nil {
			buf := make([]byte, 14)
			io.ReadFull(c, buf) // the CONNECT
		}
		c.Close()
	}()
	cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: f.CA, Client: f.Client})
	c, err := tls.Dial("tcp", l.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rec.MarkComplete()
	c.Write([]byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00})
	_, err = c.Read(make([]byte, 4))
	expectDiagnosis(t, err, rec, diagnose.DiagClosedAfterHandshake, "right after the handshake", "accepted the client certificate")
}

// The plain MQTT port of a real mosquitto, dialled with TLS.
func TestExplainPlainPort(t *testing.T) {
	f := tlstest.Get(t)
	b := tlstest.StartMosquitto(t, f.CA, f.Server)
	cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{CA: f.CA, Client: f.Client})
	_, err := tlstest.DialAndRead(t, b.Addr, cfg, true)
	d := diagnose.ExplainHandshake(err, rec)
	if d == nil || (d.Kind != diagnose.DiagEOFDuringHandshake && d.Kind != diagnose.DiagNotTLS) {
		t.Fatalf("err %v diagnosis %+v", err, d)
	}
	if !strings.Contains(d.Cause+d.Fix, "TLS") {
		t.Fatalf("diagnosis %s", d)
	}
}

func TestExplainNotTLS(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\n"))
		c.Close()
	}()
	cfg, rec := tlstest.ClientConfig(t, tlstest.ClientSetup{})
	_, err = tlstest.DialAndRead(t, l.Addr().String(), cfg, false)
	expectDiagnosis(t, err, rec, diagnose.DiagNotTLS, "did not answer with TLS")
}

func TestExplainNil(t *testing.T) {
	if diagnose.ExplainHandshake(nil, nil) != nil {
		t.Fatal("nil error explained")
	}
	if d := diagnose.ExplainHandshake(errors.New("dial tcp: lookup nowhere: no such host"), nil); d != nil {
		t.Fatalf("non-TLS error explained: %+v", d)
	}
}

// A bundle of many trusted CAs is summarised, not listed in full, and the CA to use is still
// named.
func TestExplainUnknownAuthorityBundle(t *testing.T) {
	f := tlstest.Get(t)
	s := tlstest.StartServer(t, tlstest.ServerConfig(t, f.ServerOther, nil, tls.VersionTLS12, 0))
	var bundle []byte
	for i := range 7 {
		ca, err := devpki.Issue(devpki.CertSpec{CommonName: fmt.Sprintf("Bundle CA %d", i), IsCA: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		bundle = append(bundle, ca.CertPEM...)
	}
	rec := &pki.HandshakeRecorder{}
	cfg, err := pki.ClientConfig(pki.ClientOptions{CAs: []pki.Source{pki.BytesSource(bundle, "bundle.pem")}, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	_, err = tlstest.DialAndRead(t, s.Addr, cfg, false)
	d := expectDiagnosis(t, err, rec, diagnose.DiagUnknownAuthority, "issued by CN=Other Root CA", "and 4 more")
	if n := strings.Count(d.Cause, "Bundle CA"); n != 3 {
		t.Errorf("cause names %d of the 7 trusted CAs, want 3: %s", n, d.Cause)
	}
	if !strings.Contains(d.Fix, "Other Root CA") {
		t.Errorf("fix %q should name the CA to use", d.Fix)
	}
}
