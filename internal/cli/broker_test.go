package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

// brokerOut is a concurrency-safe buffer for the broker command's output.
type brokerOut struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *brokerOut) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}
func (o *brokerOut) String() string { o.mu.Lock(); defer o.mu.Unlock(); return o.b.String() }

// startBrokerCmd runs `fennec broker args...` until the test ends and returns its stdout once the
// banner is complete.
func startBrokerCmd(t *testing.T, args ...string) string {
	t.Helper()
	banner, _ := startBrokerCmdLogs(t, args...)
	return banner
}

// startBrokerCmdLogs is startBrokerCmd that also returns the broker's log (its stderr).
func startBrokerCmdLogs(t *testing.T, args ...string) (string, *brokerOut) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &brokerOut{}, &brokerOut{}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, append([]string{"broker"}, args...), IO{In: strings.NewReader(""), Out: out, Err: errOut})
	}()
	exited := false
	t.Cleanup(func() {
		cancel()
		if exited {
			return
		}
		select {
		case code := <-done:
			if code != cmdutil.ExitOK {
				t.Errorf("fennec broker exited %d after interrupt; stderr:\n%s", code, errOut)
			}
		case <-time.After(20 * time.Second):
			t.Error("fennec broker did not stop after interrupt")
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "mosquitto_pub") {
		select {
		case code := <-done:
			exited = true
			t.Fatalf("fennec broker exited %d: %s%s", code, out, errOut)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner from fennec broker: %s%s", out, errOut)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The banner is printed line by line: the first "mosquitto_pub" is the first listener's,
	// and under load a test read the rest before it was written. The banner is whole once it
	// stops growing (it is printed in one go, well within this wait).
	for n := -1; n != len(out.String()) && time.Now().Before(deadline); {
		n = len(out.String())
		time.Sleep(200 * time.Millisecond)
	}
	return out.String(), errOut
}

// runTool runs a peer (mosquitto_pub, mosquitto_sub) with a bound on its life, so that a hung peer
// fails the test instead of hanging it.
func runTool(t *testing.T, args []string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%v did not finish: %s", args, out)
	}
	return out, err
}

// waitLog waits until the broker's log has a line holding every one of want.
func waitLog(t *testing.T, logs *brokerOut, want ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, line := range strings.Split(logs.String(), "\n") {
			all := true
			for _, w := range want {
				all = all && strings.Contains(line, w)
			}
			if all {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no broker log line with %q:\n%s", want, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// bannerCommand returns the argument list of the first banner line that starts with prefix in
// the section of url.
func bannerCommand(t *testing.T, banner, url, prefix string) []string {
	t.Helper()
	in := false
	for _, line := range strings.Split(banner, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "# ") {
			in = strings.TrimPrefix(line, "# ") == url
			continue
		}
		if in && strings.HasPrefix(line, prefix+" ") {
			return shellSplit(line)
		}
	}
	t.Fatalf("no %q line for %s in:\n%s", prefix, url, banner)
	return nil
}

// shellSplit splits a command line of the banner (words, single quotes).
func shellSplit(s string) []string {
	var out []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case r == '\'':
			quoted = !quoted
			inWord = true
		case r == ' ' && !quoted:
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

// The printed mosquitto command lines connect over TLS 1.3 with the client certificate; without
// a certificate, or with one from another CA, the broker refuses.
func TestBrokerCommandMosquittoTLS13(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	banner, logs := startBrokerCmdLogs(t, "--listen", "tcp://127.0.0.1:0", "--listen", "tls://127.0.0.1:0", "--pki-dir", dir)
	if !strings.Contains(banner, "Development PKI (created): "+dir) {
		t.Fatalf("banner does not name the PKI directory:\n%s", banner)
	}
	var tlsURL string
	for _, line := range strings.Split(banner, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "#" && strings.HasPrefix(f[1], "mqtts://") {
			tlsURL = f[1]
		}
	}
	pub := bannerCommand(t, banner, tlsURL, "mosquitto_pub")
	sub := bannerCommand(t, banner, tlsURL, "mosquitto_sub")
	if !hasArg(pub, "--cert") || !hasArg(pub, "--cafile") {
		t.Fatalf("mosquitto_pub line lacks TLS flags: %v", pub)
	}
	// A retained message makes the round trip independent of who starts first.
	pub = append(pub, "-r", "-q", "1", "--tls-version", "tlsv1.3")
	if out, err := runTool(t, pub); err != nil {
		t.Fatalf("%v: %v\n%s", pub, err, out)
	}
	subArgs := append(append([]string{}, sub...), "-C", "1", "-W", "30", "--tls-version", "tlsv1.3")
	out, err := runTool(t, subArgs)
	if err != nil || !strings.Contains(string(out), "test/hello hello from mosquitto") {
		t.Fatalf("%v: %v\n%s", subArgs, err, out)
	}

	noCert := withoutFlags(pub, "--cert", "--key")
	if out, err := runTool(t, noCert); err == nil {
		t.Fatalf("mosquitto_pub without client certificate succeeded: %s", out)
	}
	waitLog(t, logs, "TLS handshake failed", "didn't provide a certificate")
	other, err := devpki.Generate(devpki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	files, err := other.WriteDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, key := files.FirstClient(other)
	foreign := append(withoutFlags(pub, "--cert", "--key"), "--cert", cert, "--key", key)
	if out, err := runTool(t, foreign); err == nil {
		t.Fatalf("mosquitto_pub with a certificate from another CA succeeded: %s", out)
	}
	waitLog(t, logs, "TLS handshake failed", "certificate signed by unknown authority")

	// The printed fennec lines work too.
	fpub := append(bannerCommand(t, banner, tlsURL, "fennec pub"), "-r", "-q", "1")
	fsub := append(bannerCommand(t, banner, tlsURL, "fennec sub"), "-C", "1", "-W", "30")
	var fout, ferr bytes.Buffer
	if code := Run(context.Background(), fpub[1:], IO{In: strings.NewReader(""), Out: &fout, Err: &ferr}); code != cmdutil.ExitOK {
		if strings.Contains(ferr.String(), "no MQTT client library wired in") {
			t.Skip("this build's fennec pub has no client yet; the mosquitto checks above passed")
		}
		t.Fatalf("%v: exit %d: %s", fpub, code, ferr.String())
	}
	if code := Run(context.Background(), fsub[1:], IO{In: strings.NewReader(""), Out: &fout, Err: &ferr}); code != cmdutil.ExitOK ||
		!strings.Contains(fout.String(), "test/hello hello from fennec") {
		t.Fatalf("%v: exit %d: %s%s", fsub, code, fout.String(), ferr.String())
	}
}

// A second start reuses the development PKI.
func TestBrokerCommandReusesPKI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	first := startBrokerCmd(t, "--listen", "tls://127.0.0.1:0", "--pki-dir", dir)
	second := startBrokerCmd(t, "--listen", "tls://127.0.0.1:0", "--pki-dir", dir)
	if !strings.Contains(first, "(created)") || !strings.Contains(second, "(reused)") {
		t.Fatalf("PKI not reused:\n%s\n%s", first, second)
	}
}

func TestBrokerCommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{"broker", "--tls-version", "1.1"},
		{"broker", "--aws"},
		{"broker", "--cert", "x.pem"},
		{"broker", "--listen", "http://127.0.0.1:0"},
	} {
		var out, errOut bytes.Buffer
		if code := Run(context.Background(), args, IO{In: strings.NewReader(""), Out: &out, Err: &errOut}); code != cmdutil.ExitUsage {
			t.Errorf("%v: exit %d, want %d; %s", args, code, cmdutil.ExitUsage, errOut.String())
		}
	}
}

func TestBrokerPasswd(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Run(context.Background(), []string{"broker", "passwd", "--iterations", "1000", "alice"},
		IO{In: strings.NewReader("s3cret\n"), Out: &out, Err: &errOut})
	if code != cmdutil.ExitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var u broker.User
	if err := json.Unmarshal(out.Bytes(), &u); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if u.Name != "alice" || !broker.CheckPassword(u.Password, "s3cret") {
		t.Fatalf("entry %+v does not verify", u)
	}
	if _, err := broker.ParseACL([]byte(`{"users":[` + strings.TrimSpace(out.String()) + `]}`)); err != nil {
		t.Fatalf("the printed entry is not a valid ACL user: %v", err)
	}
}

func hasArg(a []string, s string) bool {
	for _, x := range a {
		if x == s {
			return true
		}
	}
	return false
}

// withoutFlags drops the named flags and their values.
func withoutFlags(a []string, names ...string) []string {
	var out []string
	for i := 0; i < len(a); i++ {
		if hasArg(names, a[i]) {
			i++
			continue
		}
		out = append(out, a[i])
	}
	return out
}

// `fennec broker --aws`: registered device certificates from a directory, a policy file, and
// mosquitto_pub as the device: the allowed publish works, the denied one and an unregistered
// certificate fail.
func TestBrokerCommandAWS(t *testing.T) {
	p, err := devpki.Generate(devpki.Options{Clients: []string{"dev-1", "stranger"}})
	if err != nil {
		t.Fatal(err)
	}
	// The devices' certificates come from their own CA, which the broker does not know: AWS
	// registers device certificates, not necessarily their CA.
	files, err := p.WriteDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pkiDir := filepath.Join(t.TempDir(), "broker-pki")
	devices := t.TempDir()
	if err := os.WriteFile(filepath.Join(devices, "dev-1.cert.pem"), p.Clients["dev-1"].CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(`{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"},
		{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:us-east-1:123456789012:topic/dt/${iot:ClientId}/*"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	banner, logs := startBrokerCmdLogs(t, "--aws", "--aws-devices", devices, "--aws-policy", policy,
		"--listen", "tls://127.0.0.1:0", "--pki-dir", pkiDir)
	var addr string
	for _, line := range strings.Split(banner, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && strings.HasPrefix(f[1], "mqtts://") {
			addr = strings.TrimPrefix(f[1], "mqtts://")
		}
	}
	host, port, _ := strings.Cut(addr, ":")
	mosq := func(cn, id, topic string) error {
		args := []string{"-h", host, "-p", port, "--cafile", filepath.Join(pkiDir, "ca.pem"), "--cert", files.ClientCert[cn], "--key", files.ClientKey[cn],
			"--tls-version", "tlsv1.3", "-V", "mqttv311", "-i", id, "-t", topic, "-m", "m", "-q", "1"}
		out, err := runTool(t, append([]string{"mosquitto_pub"}, args...))
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if err := mosq("dev-1", "dev-1", "dt/dev-1/temp"); err != nil {
		t.Fatalf("allowed publish: %v", err)
	}
	if err := mosq("dev-1", "dev-1", "dt/dev-2/temp"); err == nil {
		t.Fatal("publish outside the policy succeeded")
	}
	waitLog(t, logs, "AWS rule broken", `policy denies iot:Publish on \"dt/dev-2/temp\"`)
	if err := mosq("dev-1", "someone-else", "dt/someone-else/temp"); err == nil {
		t.Fatal("connect with a client ID other than the thing name succeeded")
	}
	waitLog(t, logs, "closing without CONNACK", `policy denies iot:Connect for client ID \"someone-else\"`)
	if err := mosq("stranger", "stranger", "dt/stranger/temp"); err == nil {
		t.Fatal("unregistered certificate connected")
	}
	waitLog(t, logs, "closing without CONNACK", "is not registered")
}

// `fennec broker` shuts down cleanly on SIGTERM and SIGINT: exit status 0, the broker's "stopped"
// log line, connected clients disconnected. The test binary plays the fennec binary (Main, with
// its signal handling) in a child process.
func TestBrokerCommandSignals(t *testing.T) {
	if args := os.Getenv("FENNEC_TEST_BROKER_ARGS"); args != "" {
		os.Exit(Main(strings.Split(args, "\n"), os.Stdin, os.Stdout, os.Stderr))
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestBrokerCommandSignals$")
			cmd.Env = append(os.Environ(), "FENNEC_TEST_BROKER_ARGS="+strings.Join([]string{"broker",
				"--listen", "tcp://127.0.0.1:0", "--pki-dir", filepath.Join(t.TempDir(), "pki")}, "\n"))
			out, errOut := &brokerOut{}, &brokerOut{}
			cmd.Stdout, cmd.Stderr = out, errOut
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			var addr string
			for addr == "" {
				for _, line := range strings.Split(out.String(), "\n") {
					if f := strings.Fields(line); len(f) >= 2 && f[0] == "#" && strings.HasPrefix(f[1], "mqtt://") && strings.Contains(out.String(), "mosquitto_pub") {
						addr = strings.TrimPrefix(f[1], "mqtt://")
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("no banner: %s%s", out, errOut)
				}
				time.Sleep(10 * time.Millisecond)
			}
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// CONNECT 3.1.1, client ID "s", keep-alive 60 s; CONNACK is 4 bytes.
			c.Write([]byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 1, 's'})
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
				t.Fatalf("CONNACK: %v", err)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("fennec broker after %v: %v\n%s", sig, err, errOut)
			}
			if !strings.Contains(errOut.String(), "msg=stopped") {
				t.Fatalf("no stopped log line after %v:\n%s", sig, errOut)
			}
			if n, err := c.Read(make([]byte, 1)); err == nil {
				t.Fatalf("client connection still open after %v (read %d bytes)", sig, n)
			}
		})
	}
}

// --log-json writes one JSON object per log line, with the listener facts as fields.
func TestBrokerCommandLogJSON(t *testing.T) {
	_, logs := startBrokerCmdLogs(t, "--listen", "tcp://127.0.0.1:0", "--pki-dir", filepath.Join(t.TempDir(), "pki"), "--log-json")
	waitLog(t, logs, `"msg":"listening"`)
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, line)
		}
		if rec["msg"] == "listening" && (rec["scheme"] != "tcp" || rec["addr"] == nil) {
			t.Fatalf("listening record without its fields: %v", rec)
		}
	}
}

// `fennec broker` without flags: plain MQTT on 127.0.0.1:1883 and TLS 1.3 with client
// certificates on 127.0.0.1:8883, and its printed mosquitto_pub line works. Skipped when another
// program holds one of these ports.
func TestBrokerCommandDefaults(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:1883", "127.0.0.1:8883"} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("%s is busy (%v): the defaults cannot be tried here", addr, err)
		}
		l.Close()
	}
	banner := startBrokerCmd(t, "--pki-dir", filepath.Join(t.TempDir(), "pki"))
	for _, want := range []string{"# mqtt://127.0.0.1:1883", "# mqtts://127.0.0.1:8883"} {
		if !strings.Contains(banner, want) {
			t.Fatalf("banner lacks %q:\n%s", want, banner)
		}
	}
	pub := append(bannerCommand(t, banner, "mqtts://127.0.0.1:8883", "mosquitto_pub"), "-q", "1", "--tls-version", "tlsv1.3")
	if out, err := runTool(t, pub); err != nil {
		t.Fatalf("%v: %v\n%s", pub, err, out)
	}
}
