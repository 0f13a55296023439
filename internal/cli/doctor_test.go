package cli

import (
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
	"github.com/fennec-mqtt/fennec/pki"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

func TestDoctorCommand(t *testing.T) {
	isolate(t)
	b := brokertest.Start(t, brokertest.Options{})
	host, port := cmdutil.SplitHostPort(b.TLSAddr)
	url := "mqtts://" + host + ":" + strconv.Itoa(port)
	tlsArgs := []string{"--cafile", b.CAFile, "--servername", "localhost"}

	code, out, errout := run(t, append([]string{"doctor", url, "--cert", b.ClientCert, "--key", b.ClientKey}, tlsArgs...)...)
	if code != cmdutil.ExitOK || !strings.Contains(out, "✔ roundtrip") || !strings.Contains(out, "all steps passed") || !strings.Contains(out, "TLS 1.3") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errout)
	}

	other, err := devpki.Generate(devpki.Options{Clients: []string{"stranger"}})
	if err != nil {
		t.Fatal(err)
	}
	files, err := other.WriteDir(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	cert, key := files.ClientCert["stranger"], files.ClientKey["stranger"]
	code, out, _ = run(t, append([]string{"doctor", url, "--cert", cert, "--key", key, "--json"}, tlsArgs...)...)
	var rep struct {
		OK        bool   `json:"ok"`
		Failed    string `json:"failed_step"`
		ExitCode  int    `json:"exit_code"`
		Diagnosis struct {
			Cause, Explanation, Fix string
			Evidence                []string
		} `json:"diagnosis"`
		Steps []struct {
			Step string
			OK   bool
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if code != cmdutil.ExitNetwork || rep.ExitCode != cmdutil.ExitNetwork || rep.OK || rep.Failed != "tls" || rep.Diagnosis.Cause != "client-certificate-rejected" ||
		!strings.Contains(rep.Diagnosis.Explanation, "CN=stranger") || len(rep.Steps) != 4 ||
		!strings.Contains(strings.Join(rep.Diagnosis.Evidence, " "), "different CA with the same name") {
		t.Fatalf("exit %d: %s", code, out)
	}

	code, out, _ = run(t, "doctor", "mqtt://"+b.TCPAddr, "--no-publish")
	if code != cmdutil.ExitOK || strings.Contains(out, "roundtrip") {
		t.Fatalf("--no-publish: exit %d\n%s", code, out)
	}
	code, out, _ = run(t, "help", "diagnosis")
	if code != cmdutil.ExitOK || !strings.Contains(out, "client-certificate-rejected") || !strings.Contains(out, "closed-after-connect") {
		t.Fatalf("help diagnosis: %s", out)
	}
}

// Under TLS 1.3 a broker rejects the client certificate after the client's side of the
// handshake; the rejection reached pub as an alert or as a reset at random, and pub named a
// generic MQTT cause with exit code 4 in about half the runs. The issuer is checked against the
// CAs the server announced, so the answer is the same every time.
func TestPubRejectedClientCertificateTLS13(t *testing.T) {
	isolate(t)
	other, err := devpki.Generate(devpki.Options{Clients: []string{"stranger"}})
	if err != nil {
		t.Fatal(err)
	}
	files, err := other.WriteDir(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, addr, ca string) {
		host, port := cmdutil.SplitHostPort(addr)
		for i := range 20 {
			code, out, errout := run(t, "pub", "-h", host, "-p", strconv.Itoa(port), "--cafile", ca, "--servername", "localhost", "--tls-version", "tlsv1.3",
				"--cert", files.ClientCert["stranger"], "--key", files.ClientKey["stranger"], "-t", "t", "-m", "x", "--json")
			var obj map[string]any
			json.Unmarshal([]byte(out), &obj)
			if code != cmdutil.ExitNetwork || obj["diagnosis"] != "client-certificate-rejected" || obj["step"] != "tls" || !strings.Contains(errout, "CN=stranger") {
				t.Fatalf("run %d: exit %d\n%s\n%s", i+1, code, out, errout)
			}
		}
	}
	t.Run("embedded", func(t *testing.T) {
		b := brokertest.Start(t, brokertest.Options{})
		check(t, b.TLSAddr, b.CAFile)
	})
	t.Run("mosquitto", func(t *testing.T) {
		m, mf := mosquittoMTLS(t)
		check(t, m.TLSAddr, mf.CA)
	})
}

// pub's --json carries the cause ID fennec doctor gives for the same failure.
func TestPubJSONCauseID(t *testing.T) {
	isolate(t)
	code, out, _ := run(t, "pub", "-h", "127.0.0.1", "-p", "1", "-t", "t", "-m", "x", "--json")
	var obj map[string]any
	json.Unmarshal([]byte(out), &obj)
	if code != cmdutil.ExitNetwork || obj["diagnosis"] != "tcp-refused" || obj["step"] != "tcp" {
		t.Fatalf("exit %d: %s", code, out)
	}
}

// Against a broker without MQTT 5 (aedes before 1.0), pub read "protocol violation by the
// broker: reason code Granted QoS 1 is not allowed in CONNACK".
func TestPubBrokerWithoutMQTT5(t *testing.T) {
	isolate(t)
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
			c.SetDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 256)
			c.Read(buf) // CONNECT
			c.Write([]byte{0x20, 0x02, 0x00, 0x01})
			c.Close()
		}
	}()
	host, port := cmdutil.SplitHostPort(l.Addr().String())
	code, out, errout := run(t, "pub", "-h", host, "-p", strconv.Itoa(port), "-t", "t", "-m", "x", "--json")
	var obj map[string]any
	json.Unmarshal([]byte(out), &obj)
	if code != cmdutil.ExitRefused || obj["diagnosis"] != "mqtt-version-unsupported" || !strings.Contains(errout, "-V 311") || !strings.Contains(errout, "does not speak MQTT 5") || strings.Contains(errout, "Granted QoS") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errout)
	}
}

// --header runs the doctor with the arrays of a firmware's certs_test.h.
func TestDoctorHeader(t *testing.T) {
	isolate(t)
	b := brokertest.Start(t, brokertest.Options{})
	host, port := cmdutil.SplitHostPort(b.TLSAddr)
	url := "mqtts://" + host + ":" + strconv.Itoa(port)
	cl := b.PKI.Clients["fennec-client"]
	kb, _ := pem.Decode(cl.KeyPEM)
	good := append(append(pki.EncodeC("ca_cert_der", b.PKI.CA.Cert.Raw), pki.EncodeC("client_cert_der", cl.Cert.Raw)...), pki.EncodeC("client_key_der", kb.Bytes)...)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	h := write("certs_test.h", good)
	code, out, errout := run(t, "doctor", url, "--servername", "localhost", "--header", h)
	if code != cmdutil.ExitOK || !strings.Contains(out, "CA ca_cert_der, certificate client_cert_der, key client_key_der") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errout)
	}

	// The client certificate array holds the PEM text, as a hand conversion leaves it.
	pemArray := append(append(pki.EncodeC("ca_cert_der", b.PKI.CA.Cert.Raw), pki.EncodeC("client_cert_der", cl.CertPEM)...), pki.EncodeC("client_key_der", kb.Bytes)...)
	code, out, _ = run(t, "doctor", url, "--servername", "localhost", "--header", write("pem.h", pemArray), "--header-cert", "client_cert_der", "--json")
	if code != cmdutil.ExitError || !strings.Contains(out, `"cause":"pem-in-array"`) || !strings.Contains(out, "client_cert_der") {
		t.Fatalf("PEM in an array: exit %d\n%s", code, out)
	}

	// Two CA arrays: the choice is the user's.
	two := append(append([]byte{}, good...), pki.EncodeC("other_ca_der", b.PKI.CA.Cert.Raw)...)
	code, _, errout = run(t, "doctor", url, "--header", write("two.h", two))
	if code != cmdutil.ExitUsage || !strings.Contains(errout, "--header-ca") {
		t.Fatalf("ambiguous: exit %d\n%s", code, errout)
	}
	code, _, _ = run(t, "doctor", url, "--servername", "localhost", "--header", write("two2.h", two), "--header-ca", "other_ca_der")
	if code != cmdutil.ExitOK {
		t.Fatalf("chosen CA: exit %d", code)
	}
}

// A config file that holds a password and that other users can read gets a warning.
func TestConfigWithPasswordReadableByOthers(t *testing.T) {
	isolate(t)
	b := brokertest.Start(t, brokertest.Options{})
	dir := os.Getenv("XDG_CONFIG_HOME")
	os.MkdirAll(filepath.Join(dir, "fennec"), 0o700)
	p := filepath.Join(dir, "fennec", "config.toml")
	conf := "[profiles.lab]\nbroker = \"mqtt://" + b.TCPAddr + "\"\nusername = \"u\"\npassword = \"s3cret\"\n"
	for _, mode := range []os.FileMode{0o644, 0o600} {
		if err := os.WriteFile(p, []byte(conf), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		code, _, errout := run(t, "pub", "--profile", "lab", "-t", "t", "-m", "x")
		warned := strings.Contains(errout, "holds a password and other users can read it")
		if code != cmdutil.ExitOK || warned != (mode == 0o644) || strings.Contains(errout, "s3cret") {
			t.Fatalf("mode %o: exit %d, stderr %s", mode, code, errout)
		}
	}
}

// pub, sub, demo and doctor name the same cause for the same failure: one diagnosis, whether
// the user asked for it or met it.
func TestSameCauseInEveryCommand(t *testing.T) {
	isolate(t)
	b := brokertest.Start(t, brokertest.Options{})
	other, err := devpki.Generate(devpki.Options{Clients: []string{"stranger"}})
	if err != nil {
		t.Fatal(err)
	}
	files, err := other.WriteDir(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	good := []string{"--servername", "localhost", "--cafile", b.CAFile, "--cert", b.ClientCert, "--key", b.ClientKey}
	cases := []struct {
		name, url, cause string
		args             []string
	}{
		{"nothing listening", "mqtts://" + closed, "tcp-refused", good},
		{"other CA", "mqtts://" + b.TLSAddr, "unknown-authority", []string{"--servername", "localhost", "--cafile", files.CA, "--cert", b.ClientCert, "--key", b.ClientKey}},
		{"no client certificate", "mqtts://" + b.TLSAddr, "client-certificate-missing", []string{"--servername", "localhost", "--cafile", b.CAFile}},
		{"TLS to the plain port", "mqtts://" + b.TCPAddr, "plain-mqtt-port", good},
		{"hostname", "mqtts://" + b.TLSAddr, "hostname-mismatch", []string{"--servername", "broker.example", "--cafile", b.CAFile, "--cert", b.ClientCert, "--key", b.ClientKey}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cause := func(out string) string {
				for _, line := range strings.Split(out, "\n") {
					var v struct {
						Diagnosis json.RawMessage `json:"diagnosis"`
					}
					if json.Unmarshal([]byte(line), &v) != nil || v.Diagnosis == nil {
						continue
					}
					var id string
					if json.Unmarshal(v.Diagnosis, &id) == nil {
						return id
					}
					var d struct{ Cause string }
					json.Unmarshal(v.Diagnosis, &d)
					return d.Cause
				}
				return ""
			}
			for _, cmd := range [][]string{
				{"doctor", c.url, "--json"},
				{"pub", "-L", c.url + "/t", "-m", "x", "--json"},
				{"sub", "-L", c.url + "/t", "-C", "1", "-W", "2", "--json"},
				{"demo", "--broker", c.url, "--json"},
			} {
				code, out, errout := run(t, append(cmd, c.args...)...)
				if got := cause(out); got != c.cause || code != cmdutil.ExitNetwork {
					t.Errorf("%s: exit %d, cause %q, want %q\n%s\n%s", cmd[0], code, got, c.cause, out, errout)
				}
			}
		})
	}
}

// fennec doctor over WebSockets: ws:// and wss:// (with the client certificate) pass with a
// websocket step; the plain MQTT port given as ws:// fails that step with exit 3.
func TestDoctorWebSocketCommand(t *testing.T) {
	isolate(t)
	b := brokertest.Start(t, brokertest.Options{WebSockets: true})
	code, out, errout := run(t, "doctor", "ws://"+b.WSAddr+"/mqtt")
	if code != cmdutil.ExitOK || !strings.Contains(out, "✔ websocket") || !strings.Contains(out, "✔ roundtrip") {
		t.Fatalf("ws: exit %d\n%s%s", code, out, errout)
	}
	code, out, errout = run(t, "doctor", "wss://"+b.WSSAddr+"/mqtt", "--cafile", b.CAFile, "--servername", "localhost", "--cert", b.ClientCert, "--key", b.ClientKey)
	if code != cmdutil.ExitOK || !strings.Contains(out, "✔ tls") || !strings.Contains(out, "✔ websocket") {
		t.Fatalf("wss: exit %d\n%s%s", code, out, errout)
	}
	code, out, errout = run(t, "doctor", "ws://"+b.TCPAddr+"/mqtt", "--json")
	if code != cmdutil.ExitNetwork || !strings.Contains(out, `"cause":"websocket-not-http"`) {
		t.Fatalf("ws to the plain port: exit %d\n%s%s", code, out, errout)
	}
}
