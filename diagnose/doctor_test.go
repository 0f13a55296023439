package diagnose_test

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/diagnose"
	"github.com/fennec-mqtt/fennec/internal/tlstest"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/pki"
)

// runs is how often each failure is made and diagnosed: the answer must be the same every time.
const runs = 20

func hostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

// tlsTarget is a target for addr that trusts ca and presents the client cert/key files.
func tlsTarget(t *testing.T, addr, caFile, cert, key string) diagnose.Target {
	h, p := hostPort(t, addr)
	tg := diagnose.Target{Host: h, Port: p, TLS: true, Timeout: 5 * time.Second}
	tg.TLSOptions.ServerName = "localhost"
	if caFile != "" {
		tg.TLSOptions.CAs = []pki.Source{pki.FileSource(caFile)}
	}
	if cert != "" {
		tg.TLSOptions.Cert, tg.TLSOptions.Key = pki.FileSource(cert), pki.FileSource(key)
	}
	return tg
}

// expectCause runs the doctor n times against tg and asserts the failed step, the cause ID and
// that the explanation, evidence or fix names every one of want.
func expectCause(t *testing.T, tg diagnose.Target, n int, step, cause string, want ...string) *diagnose.Report {
	t.Helper()
	var first *diagnose.Report
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r := diagnose.Run(ctx, tg)
		cancel()
		if r.Failed == nil {
			t.Fatalf("run %d: every step passed; want %s/%s\n%+v", i+1, step, cause, r.Steps)
		}
		if r.Failed.Step != step || r.Failed.Kind != cause {
			t.Fatalf("run %d: diagnosis %s/%s, want %s/%s\n%s", i+1, r.Failed.Step, r.Failed.Kind, step, cause, r.Failed)
		}
		last := r.Steps[len(r.Steps)-1]
		if last.OK || last.Step != step {
			t.Fatalf("run %d: last step %+v, want %s failed", i+1, last, step)
		}
		text := r.Failed.String()
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Fatalf("run %d: diagnosis does not name %q:\n%s", i+1, w, text)
			}
		}
		if r.Failed.Fix == "" {
			t.Fatalf("run %d: no fix", i+1)
		}
		if first == nil {
			first = r
			t.Logf("%s", text)
		}
	}
	return first
}

func TestDoctorPassesEveryStep(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	tg := tlsTarget(t, b.TLSAddr, b.CAFile, b.ClientCert, b.ClientKey)
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		tg.Version = v
		r := diagnose.Run(context.Background(), tg)
		if !r.OK() {
			t.Fatalf("MQTT %d: %s", v, r.Failed)
		}
		var names []string
		for _, s := range r.Steps {
			names = append(names, s.Step)
			if !s.OK {
				t.Fatalf("step %+v not ok", s)
			}
		}
		if got := strings.Join(names, ","); got != "local,dns,tcp,tls,mqtt,roundtrip" {
			t.Fatalf("steps %s", got)
		}
		facts := fmt.Sprint(r.Steps[3])
		for _, w := range []string{"TLS 1.3", "issued by CN=Fennec Development CA", "asked for a client certificate", "sent CN=fennec-client"} {
			if !strings.Contains(facts, w) {
				t.Errorf("TLS facts do not say %q: %s", w, facts)
			}
		}
	}
}

func TestDoctorNothingListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	h, p := hostPort(t, addr)
	expectCause(t, diagnose.Target{Host: h, Port: p, Timeout: 5 * time.Second}, runs, diagnose.StepTCP, diagnose.CauseTCPRefused, "connection refused", addr)
}

func TestDoctorServerFromOtherCA(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	f := tlstest.Get(t)
	ca := tlstest.Write(t, t.TempDir(), "other-ca.pem", f.CA.CertPEM)
	expectCause(t, tlsTarget(t, b.TLSAddr, ca, b.ClientCert, b.ClientKey), runs, diagnose.StepTLS, diagnose.DiagUnknownAuthority,
		"issued by CN=Fennec Development CA", "CN=Test Root CA")
}

func TestDoctorHostnameMismatch(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	tg := tlsTarget(t, b.TLSAddr, b.CAFile, b.ClientCert, b.ClientKey)
	tg.TLSOptions.ServerName = "broker.example.com"
	expectCause(t, tg, runs, diagnose.StepTLS, diagnose.DiagHostname, "localhost", `"broker.example.com"`)
}

func TestDoctorExpiredServerCertificate(t *testing.T) {
	f := tlstest.Get(t)
	s := tlstest.StartServer(t, tlstest.ServerConfig(t, f.ExpiredServer, nil, tls.VersionTLS12, 0))
	ca := tlstest.Write(t, t.TempDir(), "ca.pem", f.CA.CertPEM)
	expectCause(t, tlsTarget(t, s.Addr, ca, "", ""), runs, diagnose.StepTLS, diagnose.DiagExpired,
		"expired on "+f.ExpiredServer.Cert.NotAfter.UTC().Format(time.DateOnly))
}

func TestDoctorClientCertificateMissing(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	expectCause(t, tlsTarget(t, b.TLSAddr, b.CAFile, "", ""), runs, diagnose.StepTLS, diagnose.DiagClientCertMissing,
		"none", "CN=Fennec Development CA")
}

// The headline case: under TLS 1.3 the broker rejects the client certificate after the
// client's side of the handshake, and the rejection used to arrive as an alert or a reset at
// random. Against both the embedded broker and mosquitto the answer is the same 20 times.
func TestDoctorClientCertificateRejected(t *testing.T) {
	f := tlstest.Get(t)
	dir := t.TempDir()
	cert, key := tlstest.Write(t, dir, "c.pem", f.ClientOther.CertPEM), tlstest.Write(t, dir, "k.pem", f.ClientOther.KeyPEM)
	t.Run("embedded", func(t *testing.T) {
		b := brokertest.Start(t, brokertest.Options{})
		expectCause(t, tlsTarget(t, b.TLSAddr, b.CAFile, cert, key), runs, diagnose.StepTLS, diagnose.DiagClientCertRejected,
			"CN=device-other", "CN=Other Root CA", "CN=Fennec Development CA")
	})
	t.Run("mosquitto", func(t *testing.T) {
		m := tlstest.StartMosquitto(t, f.CA, f.Server)
		ca := tlstest.Write(t, dir, "ca.pem", f.CA.CertPEM)
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			tg := tlsTarget(t, m.TLSAddr, ca, cert, key)
			tg.TLSOptions.MinVersion, tg.TLSOptions.MaxVersion = v, v
			expectCause(t, tg, runs, diagnose.StepTLS, diagnose.DiagClientCertRejected, "CN=device-other", "CN=Other Root CA")
		}
	})
}

func TestDoctorTLSToPlainPort(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	expectCause(t, tlsTarget(t, b.TCPAddr, b.CAFile, b.ClientCert, b.ClientKey), runs, diagnose.StepTLS, diagnose.CausePlainMQTTPort,
		"speaks plain MQTT", "got a CONNACK")
}

func TestDoctorPlainToTLSPort(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	h, p := hostPort(t, b.TLSAddr)
	expectCause(t, diagnose.Target{Host: h, Port: p, Timeout: 5 * time.Second}, runs, diagnose.StepMQTT, diagnose.CauseTLSPort,
		"speaks MQTT over TLS", "ServerHello")
}

func TestDoctorTLSVersion(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{}) // TLS 1.3 only
	tg := tlsTarget(t, b.TLSAddr, b.CAFile, b.ClientCert, b.ClientKey)
	tg.TLSOptions.MaxVersion = tls.VersionTLS12
	r := expectCause(t, tg, runs, diagnose.StepTLS, diagnose.DiagVersion, "accepts TLS 1.3", "TLS 1.2 only")
	if !strings.Contains(r.Failed.Fix, "1.3") {
		t.Fatalf("fix %q", r.Failed.Fix)
	}
}

func TestDoctorBadPassword(t *testing.T) {
	hash, err := broker.HashPassword("right", 1000)
	if err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, brokertest.Options{ACL: &broker.ACL{Users: []broker.User{{Name: "dev", Password: hash, Rules: broker.Rules{Publish: []string{"#"}, Subscribe: []string{"#"}}}}}})
	h, p := hostPort(t, b.TCPAddr)
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		tg := diagnose.Target{Host: h, Port: p, Version: v, Username: "dev", Password: []byte("wrong"), Timeout: 5 * time.Second}
		expectCause(t, tg, runs, diagnose.StepMQTT, diagnose.CauseConnackRefused, `username "dev"`, "CONNACK")
		tg.Password = []byte("right")
		if r := diagnose.Run(context.Background(), tg); !r.OK() {
			t.Fatalf("right password: %s", r.Failed)
		}
	}
}

func TestDoctorSubscriptionRefused(t *testing.T) {
	hash, _ := broker.HashPassword("pw", 1000)
	b := brokertest.Start(t, brokertest.Options{ACL: &broker.ACL{Users: []broker.User{{Name: "dev", Password: hash, Rules: broker.Rules{Publish: []string{"#"}, Subscribe: []string{"allowed/#"}}}}}})
	h, p := hostPort(t, b.TCPAddr)
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		tg := diagnose.Target{Host: h, Port: p, Version: v, Username: "dev", Password: []byte("pw"), Timeout: 5 * time.Second}
		expectCause(t, tg, runs, diagnose.StepRoundTrip, diagnose.CauseSubscribeRefused, "fennec/doctor/", "SUBACK")
	}
}

const doctorPolicy = `{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"},
    {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "arn:aws:iot:us-east-1:123456789012:topic/things/${iot:ClientId}/*"},
    {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:us-east-1:123456789012:topicfilter/*"}
  ]
}`

func TestDoctorAWSEmulation(t *testing.T) {
	pol, err := broker.ParsePolicy([]byte(doctorPolicy))
	if err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, brokertest.Options{Clients: []string{"thing-1"}, AWS: &broker.AWS{Policy: pol}})
	tg := tlsTarget(t, b.TLSAddr, b.CAFile, b.ClientCert, b.ClientKey)
	tg.AWS = true
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		tg.Version = v
		tg.ClientID, tg.Topic = "not-the-thing", ""
		r := expectCause(t, tg, runs, diagnose.StepMQTT, diagnose.CauseClosedAfterConnect, "AWS IoT Core", "iot:Connect", `"not-the-thing"`, "CN=thing-1")
		if !r.Failed.Inferred || len(r.Failed.Candidates) < 2 {
			t.Fatalf("candidates %+v", r.Failed)
		}
		tg.ClientID = "thing-1"
		tg.Topic = "elsewhere/t"
		// AWS closes an MQTT 3.1.1 connection that publishes where the policy does not
		// allow it, and answers PUBACK 0x87 (not authorized) under MQTT 5.
		if v == packet.V311 {
			expectCause(t, tg, 5, diagnose.StepRoundTrip, diagnose.CauseClosedAfterPublish, "iot:Publish", "elsewhere/t")
		} else {
			expectCause(t, tg, 5, diagnose.StepRoundTrip, diagnose.CausePublishRefused, "iot:Publish", "elsewhere/t", "0x87")
		}
		tg.Topic = "things/thing-1/doctor"
		if r := diagnose.Run(context.Background(), tg); !r.OK() {
			t.Fatalf("allowed topic: %s", r.Failed)
		}
	}
}

// scripted serves each connection with fn.
func scripted(t *testing.T, fn func(net.Conn)) (string, int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
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
				c.SetDeadline(time.Now().Add(10 * time.Second))
				fn(c)
			}()
		}
	}()
	return hostPort(t, l.Addr().String())
}

// readPacket reads one whole MQTT packet (remaining length below 128 bytes suffices here).
func readPacket(c net.Conn) ([]byte, error) {
	h := make([]byte, 2)
	if _, err := io.ReadFull(c, h); err != nil {
		return nil, err
	}
	body := make([]byte, h[1]&0x7f)
	_, err := io.ReadFull(c, body)
	return append(h, body...), err
}

// A broker without MQTT 5 (aedes before 1.0, old mosquitto) answers an MQTT 5 CONNECT with a
// 3.1.1 CONNACK carrying return code 1.
func TestDoctorBrokerWithoutMQTT5(t *testing.T) {
	h, p := scripted(t, func(c net.Conn) {
		if _, err := readPacket(c); err == nil {
			c.Write([]byte{0x20, 0x02, 0x00, 0x01})
		}
	})
	r := expectCause(t, diagnose.Target{Host: h, Port: p, Timeout: 5 * time.Second}, runs, diagnose.StepMQTT, diagnose.CauseMQTTVersion, "20 02 00 01", "3.1.1")
	if !strings.Contains(r.Failed.Fix, "-V 311") {
		t.Fatalf("fix %q", r.Failed.Fix)
	}
}

func TestDoctorSessionTakenOver(t *testing.T) {
	h, p := scripted(t, func(c net.Conn) {
		if _, err := readPacket(c); err != nil {
			return
		}
		c.Write([]byte{0x20, 0x03, 0x00, 0x00, 0x00})
		if _, err := readPacket(c); err != nil { // SUBSCRIBE
			return
		}
		c.Write([]byte{0xe0, 0x02, 0x8e, 0x00})
	})
	expectCause(t, diagnose.Target{Host: h, Port: p, ClientID: "dev-7", Timeout: 5 * time.Second}, runs, diagnose.StepRoundTrip, diagnose.CauseSessionTakenOver, `"dev-7"`, "0x8E")
}

func TestDoctorClosedAfterConnect(t *testing.T) {
	h, p := scripted(t, func(c net.Conn) { readPacket(c) })
	r := expectCause(t, diagnose.Target{Host: h, Port: p, ClientID: "dev-8", Timeout: 5 * time.Second}, runs, diagnose.StepMQTT, diagnose.CauseClosedAfterConnect, `client ID "dev-8"`, "without a CONNACK")
	if !r.Failed.Inferred {
		t.Fatal("an inferred cause must say so")
	}
}

func TestDoctorLocalMaterial(t *testing.T) {
	f := tlstest.Get(t)
	dir := t.TempDir()
	ca := tlstest.Write(t, dir, "ca.pem", f.CA.CertPEM)
	target := func(cert, key []byte) diagnose.Target {
		tg := diagnose.Target{Host: "127.0.0.1", Port: 1, TLS: true, Timeout: time.Second}
		tg.TLSOptions.CAs = []pki.Source{pki.FileSource(ca)}
		tg.TLSOptions.Cert, tg.TLSOptions.Key = pki.BytesSource(cert, "client.pem"), pki.BytesSource(key, "client-key.pem")
		return tg
	}
	t.Run("key of another certificate", func(t *testing.T) {
		expectCause(t, target(f.Client.CertPEM, f.Stray.KeyPEM), runs, diagnose.StepLocal, diagnose.CauseKeyMismatch, "client-key.pem")
	})
	t.Run("expired", func(t *testing.T) {
		expectCause(t, target(f.Expired.CertPEM, f.Expired.KeyPEM), runs, diagnose.StepLocal, diagnose.CauseClientCertValidity,
			"expired on "+f.Expired.Cert.NotAfter.UTC().Format(time.DateOnly))
	})
	t.Run("not yet valid", func(t *testing.T) {
		expectCause(t, target(f.NotYetValid.CertPEM, f.NotYetValid.KeyPEM), runs, diagnose.StepLocal, diagnose.CauseClientCertValidity,
			f.NotYetValid.Cert.NotBefore.UTC().Format(time.DateOnly))
	})
	t.Run("clock unset", func(t *testing.T) {
		tg := target(f.Client.CertPEM, f.Client.KeyPEM)
		tg.TLSOptions.Time = func() time.Time { return time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC) }
		expectCause(t, tg, runs, diagnose.StepLocal, diagnose.CauseClockImplausible, "1970-01-02", "clock")
	})
	t.Run("encrypted key without passphrase", func(t *testing.T) {
		k, _ := pem.Decode(f.Client.KeyPEM)
		der, err := pki.EncryptPKCS8Iterations(k.Bytes, []byte("secret"), 1000)
		if err != nil {
			t.Fatal(err)
		}
		enc := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der})
		r := expectCause(t, target(f.Client.CertPEM, enc), runs, diagnose.StepLocal, diagnose.CauseKeyEncrypted, "encrypted")
		if strings.Contains(r.Failed.Fix, "PBES2") || !strings.Contains(r.Failed.Fix, "passphrase") || !strings.Contains(r.Failed.Fix, "decrypted copy") {
			t.Fatalf("fix %q", r.Failed.Fix)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		tg := target(f.Client.CertPEM, f.Client.KeyPEM)
		tg.TLSOptions.CAs = []pki.Source{pki.FileSource(filepath.Join(dir, "nope.pem"))}
		expectCause(t, tg, runs, diagnose.StepLocal, diagnose.CauseFileUnreadable, "nope.pem")
	})
	t.Run("PEM text in a C array", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("static const unsigned char client_cert[] = {")
		for i, c := range f.Client.CertPEM {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "0x%02x", c)
		}
		b.WriteString("};\n")
		p := filepath.Join(dir, "certs_test.h")
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		tg := target(f.Client.CertPEM, f.Client.KeyPEM)
		tg.TLSOptions.Cert = pki.FileSource(p)
		expectCause(t, tg, runs, diagnose.StepLocal, diagnose.CausePEMInArray, "PEM")
	})
}

// Every cause ID is documented in docs/diagnosis.md.
func TestCausesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/diagnosis.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range diagnose.Causes() {
		if !strings.Contains(string(doc), "| `"+c+"`") {
			t.Errorf("cause %q is not in docs/diagnosis.md", c)
		}
	}
}
