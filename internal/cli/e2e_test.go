package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

// watchBuf is a concurrency-safe buffer that closes seen when it first contains watch.
type watchBuf struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	watch string
	seen  chan struct{}
	once  sync.Once
}

func newWatchBuf(watch string) *watchBuf { return &watchBuf{watch: watch, seen: make(chan struct{})} }

func (w *watchBuf) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if w.watch != "" && strings.Contains(w.buf.String(), w.watch) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

func (w *watchBuf) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

type result struct {
	code        int
	out, errout string
}

// start runs the command in the background; stderr is watched for watch (e.g. "<- SUBACK").
func start(t *testing.T, ctx context.Context, watch string, args ...string) (<-chan result, *watchBuf) {
	t.Helper()
	out, errb := newWatchBuf(""), newWatchBuf(watch)
	done := make(chan result, 1)
	go func() {
		code := Run(ctx, args, IO{In: strings.NewReader(""), Out: out, Err: errb})
		done <- result{code, out.String(), errb.String()}
	}()
	return done, errb
}

func wait(t *testing.T, ch <-chan result, what string) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not finish", what)
		return result{}
	}
}

func waitSeen(t *testing.T, w *watchBuf, done <-chan result, what string) {
	t.Helper()
	select {
	case <-w.seen:
	case r := <-done:
		t.Fatalf("%s ended before it was ready: exit %d\nstdout: %s\nstderr: %s", what, r.code, r.out, r.errout)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s never got ready; stderr so far: %s", what, w.String())
	}
}

func isolate(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("FENNEC_PROFILE", "")
	os.Unsetenv("FENNEC_PASSWORD")
}

// TestPubSubRoundTrip: fennec sub receives what fennec pub sends, through the embedded broker,
// for MQTT 3.1.1 and 5 over plain TCP and over TLS 1.3 with client certificates.
func TestPubSubRoundTrip(t *testing.T) {
	isolate(t)
	b := brokertest.Start(t, brokertest.Options{WebSockets: true})
	for _, v := range []string{"5", "311"} {
		for _, tr := range []string{"tcp", "mtls", "ws", "wss"} {
			t.Run("v"+v+"/"+tr, func(t *testing.T) {
				host, port := cmdutil.SplitHostPort(b.TCPAddr)
				conn := []string{"-h", host, "-p", fmt.Sprint(port), "-V", v}
				certs := []string{"--cafile", b.CAFile, "--cert", b.ClientCert, "--key", b.ClientKey}
				switch tr {
				case "mtls":
					host, port = cmdutil.SplitHostPort(b.TLSAddr)
					conn = append([]string{"-h", host, "-p", fmt.Sprint(port), "-V", v}, certs...)
				case "ws":
					conn = []string{"-L", "ws://" + b.WSAddr + "/mqtt", "-V", v}
				case "wss":
					conn = append([]string{"-L", "wss://" + b.WSSAddr + "/mqtt", "-V", v}, certs...)
				}
				topic := "rt/" + v + "/" + tr
				ctx := context.Background()
				sub, subErr := start(t, ctx, "<- SUBACK", append([]string{"sub", "-t", topic + "/#", "-q", "2", "-C", "2", "-W", "20", "--json", "-d"}, conn...)...)
				waitSeen(t, subErr, sub, "sub")
				code, out, errout := run(t, append([]string{"pub", "-t", topic + "/a", "-m", "hello 1", "-q", "1"}, conn...)...)
				if code != 0 {
					t.Fatalf("pub: exit %d\n%s%s", code, out, errout)
				}
				code, out, errout = run(t, append([]string{"pub", "-t", topic + "/b", "-m", "hello 2", "-q", "2", "--json"}, conn...)...)
				if code != 0 {
					t.Fatalf("pub 2: exit %d\n%s%s", code, out, errout)
				}
				var pr map[string]any
				if err := json.Unmarshal([]byte(out), &pr); err != nil || pr["result"] != "ok" || pr["qos"] != float64(2) {
					t.Fatalf("pub --json = %q (%v)", out, err)
				}
				r := wait(t, sub, "sub")
				if r.code != 0 {
					t.Fatalf("sub: exit %d\nstdout: %s\nstderr: %s", r.code, r.out, r.errout)
				}
				lines := strings.Split(strings.TrimSpace(r.out), "\n")
				if len(lines) != 2 {
					t.Fatalf("sub printed %d lines, want 2:\n%s", len(lines), r.out)
				}
				// two publishers, two topics: MQTT orders messages per publisher and topic only
				sort.Slice(lines, func(i, j int) bool { return strings.Contains(lines[i], topic+"/a") })
				for i, l := range lines {
					var m map[string]any
					if err := json.Unmarshal([]byte(l), &m); err != nil {
						t.Fatalf("line %d is not JSON: %q", i, l)
					}
					wantTopic := []string{topic + "/a", topic + "/b"}[i]
					if m["topic"] != wantTopic || m["payload"] != fmt.Sprintf("hello %d", i+1) || m["qos"] != float64(i+1) || m["retain"] != false {
						t.Errorf("message %d = %v", i, m)
					}
					if _, ok := m["time"].(string); !ok {
						t.Errorf("message %d has no time: %v", i, m)
					}
					// packet_id is the identifier the broker used, as the trace shows it
					id, _ := m["packet_id"].(float64)
					if trace := fmt.Sprintf("<- PUBLISH id=%d QoS %d topic=%q", int(id), i+1, wantTopic); id < 1 || !strings.Contains(r.errout, trace) {
						t.Errorf("message %d: packet_id %v, trace lacks %q:\n%s", i, m["packet_id"], trace, r.errout)
					}
				}
				// the --debug trace shows both directions and, with TLS, the handshake facts
				for _, want := range []string{"-> CONNECT MQTT", "<- CONNACK", "-> SUBSCRIBE", "<- PUBLISH", "stats: 1 connection(s), 0 QoS 0 message(s) dropped"} {
					if !strings.Contains(r.errout, want) {
						t.Errorf("trace lacks %q:\n%s", want, r.errout)
					}
				}
				if tr == "mtls" || tr == "wss" {
					for _, want := range []string{"TLS 1.3", "client certificate: requested by the server, sent", "peer chain [0]"} {
						if !strings.Contains(r.errout, want) {
							t.Errorf("trace lacks %q:\n%s", want, r.errout)
						}
					}
				}
			})
		}
	}
}

// TestSubCountAndTimeout: -C stops after the count, -W gives up with exit 5 when the count was
// not reached and ends normally (exit 0) without -C.
func TestSubCountAndTimeout(t *testing.T) {
	isolate(t)
	b := brokertest.Start(t, brokertest.Options{})
	host, port := cmdutil.SplitHostPort(b.TCPAddr)
	conn := []string{"-h", host, "-p", fmt.Sprint(port)}
	// three retained messages are there before the subscription; -C 2 prints exactly two
	for i := 1; i <= 3; i++ {
		if code, _, e := run(t, append([]string{"pub", "-t", fmt.Sprintf("cw/%d", i), "-m", fmt.Sprint(i), "-r", "-q", "1"}, conn...)...); code != 0 {
			t.Fatalf("pub: %d %s", code, e)
		}
	}
	code, out, errout := run(t, append([]string{"sub", "-t", "cw/#", "-C", "2", "-v"}, conn...)...)
	if code != 0 || len(strings.Split(strings.TrimSpace(out), "\n")) != 2 || !strings.HasPrefix(out, "cw/") {
		t.Fatalf("-C 2: exit %d, stdout %q, stderr %s", code, out, errout)
	}
	// nothing is published to this filter: -W 1 with -C runs out → 27, as mosquitto_sub
	code, out, errout = run(t, append([]string{"sub", "-t", "empty/#", "-C", "1", "-W", "1"}, conn...)...)
	if code != cmdutil.ExitSubTimeout || out != "" || !strings.Contains(errout, "timed out") {
		t.Fatalf("-W without enough messages: exit %d, stdout %q, stderr %s", code, out, errout)
	}
	// -W without -C runs out too: 27, as mosquitto_sub
	code, _, errout = run(t, append([]string{"sub", "-t", "nothing/here", "-W", "1"}, conn...)...)
	if code != cmdutil.ExitSubTimeout || !strings.Contains(errout, "timed out") {
		t.Fatalf("-W alone: exit %d %s", code, errout)
	}
	// -F, with only the retained messages
	code, out, _ = run(t, append([]string{"sub", "-t", "cw/#", "--retained-only", "-C", "3", "-q", "1", "-F", "%t=%p q%q r%r"}, conn...)...)
	if code != 0 || !strings.Contains(out, "cw/1=1 q1 r1") || strings.Contains(out, "r0") {
		t.Fatalf("-F: exit %d, %q", code, out)
	}
	// --remove-retained clears them
	code, _, errout = run(t, append([]string{"sub", "-t", "cw/#", "--remove-retained", "--retained-only", "-C", "3"}, conn...)...)
	if code != 0 {
		t.Fatalf("--remove-retained: %d %s", code, errout)
	}
	// (the broker may still forward a just-published message live, without the retain flag;
	// --retained-only stops at such a message, so out stays empty either way)
	code, out, _ = run(t, append([]string{"sub", "-t", "cw/#", "--retained-only", "-C", "1", "-W", "1"}, conn...)...)
	if code != cmdutil.ExitSubTimeout && code != 0 || out != "" {
		t.Fatalf("retained messages still there after --remove-retained: exit %d %q", code, out)
	}
}

// machineCode is an internal cause code such as "(eof-during-handshake)" in a line for people.
var machineCode = regexp.MustCompile(`\([a-z]+(-[a-z]+)+\)`)

// TestExitCodes: one failure of each class gives its exit code and hint lines naming the step.
func TestExitCodes(t *testing.T) {
	isolate(t)
	b := brokertest.Start(t, brokertest.Options{})
	other, err := devpki.Generate(devpki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	otherFiles, err := other.WriteDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tlsHost, tlsPort := cmdutil.SplitHostPort(b.TLSAddr)
	tcpHost, tcpPort := cmdutil.SplitHostPort(b.TCPAddr)
	free := mosquittotest.FreePort(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		step string // expected in the hints
	}{
		{"usage", []string{"pub", "-t", "x"}, cmdutil.ExitUsage, ""},
		{"tcp refused", []string{"pub", "-t", "x", "-m", "y", "-h", "127.0.0.1", "-p", fmt.Sprint(free)}, cmdutil.ExitNetwork, "step: TCP"},
		{"tls unknown CA", []string{"pub", "-t", "x", "-m", "y", "-h", tlsHost, "-p", fmt.Sprint(tlsPort), "--cafile", otherFiles.CA, "--cert", b.ClientCert, "--key", b.ClientKey}, cmdutil.ExitNetwork, "step: TLS"},
		{"tls no client cert", []string{"pub", "-t", "x", "-m", "y", "-h", tlsHost, "-p", fmt.Sprint(tlsPort), "--cafile", b.CAFile}, cmdutil.ExitNetwork, "step: TLS"},
		{"tls to a plain port", []string{"pub", "-t", "x", "-m", "y", "-h", tcpHost, "-p", fmt.Sprint(tcpPort), "--cafile", b.CAFile}, cmdutil.ExitNetwork, "step: TLS"},
		{"missing cert file", []string{"pub", "-t", "x", "-m", "y", "-h", tlsHost, "-p", fmt.Sprint(tlsPort), "--cafile", b.CAFile, "--cert", "/nonexistent.pem", "--key", "/nonexistent-key.pem"}, cmdutil.ExitError, "step: TLS setup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errout := run(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errout)
			}
			if !strings.HasPrefix(errout, "fennec: error: ") || !strings.Contains(errout, tc.step) {
				t.Fatalf("stderr lacks %q:\n%s", tc.step, errout)
			}
			if want := fmt.Sprintf("fennec: error: cannot connect to 127.0.0.1:%d: connection refused\n", free); tc.name == "tcp refused" && !strings.HasPrefix(errout, want) {
				t.Errorf("first line of a refused connection: want %q\n%s", want, errout)
			}
			if tc.code != cmdutil.ExitUsage && !strings.Contains(errout, "hint: fix: ") {
				t.Fatalf("no fix in the hints:\n%s", errout)
			}
			// plain words: one "fennec: " prefix, no library prefixes, no internal cause codes
			if strings.Count(errout, "fennec: ") != 1 || strings.Contains(errout, "pki: ") || machineCode.MatchString(errout) {
				t.Fatalf("not plain words:\n%s", errout)
			}
			// --json names the step and, where the TLS diagnosis has one, the cause's code
			code, out, _ = run(t, append(tc.args, "--json")...)
			if code != tc.code {
				t.Fatalf("--json: exit %d, want %d", code, tc.code)
			}
			var obj map[string]any
			if err := json.Unmarshal([]byte(out), &obj); err != nil || obj["exit_code"] != float64(tc.code) {
				t.Fatalf("--json: %q %v", out, err)
			}
			if tc.name == "tls to a plain port" && (obj["step"] != "tls" || obj["diagnosis"] == nil) {
				t.Fatalf("--json lacks step or diagnosis: %s", out)
			}
		})
	}

	t.Run("quiet", func(t *testing.T) {
		code, out, errout := run(t, "pub", "-t", "x", "-m", "y", "-h", "127.0.0.1", "-p", fmt.Sprint(free), "--quiet")
		if code != cmdutil.ExitNetwork || out != "" || errout != "" {
			t.Fatalf("--quiet: exit %d, stdout %q, stderr %q", code, out, errout)
		}
	})

	t.Run("refused by server", func(t *testing.T) {
		pw, err := broker.HashPassword("right", 1000)
		if err != nil {
			t.Fatal(err)
		}
		ab := brokertest.Start(t, brokertest.Options{ACL: &broker.ACL{Users: []broker.User{{Name: "alice", Password: pw, Rules: broker.Rules{Publish: []string{"#"}, Subscribe: []string{"open/#"}}}}}})
		h, p := cmdutil.SplitHostPort(ab.TCPAddr)
		for _, v := range []string{"5", "311"} {
			t.Setenv("FENNEC_PASSWORD", "wrong")
			code, out, errout := run(t, "pub", "-t", "x", "-m", "y", "-h", h, "-p", fmt.Sprint(p), "-u", "alice", "-V", v, "--json")
			if code != cmdutil.ExitRefused || !strings.Contains(errout, "step: MQTT") {
				t.Fatalf("-V %s bad password: exit %d\nstdout: %s\nstderr: %s", v, code, out, errout)
			}
			var obj map[string]any
			if err := json.Unmarshal([]byte(out), &obj); err != nil || obj["exit_code"] != float64(cmdutil.ExitRefused) || obj["step"] != "mqtt" {
				t.Fatalf("--json error object = %q (%v)", out, err)
			}
			t.Setenv("FENNEC_PASSWORD", "right")
			if code, _, errout := run(t, "pub", "-t", "x", "-m", "y", "-h", h, "-p", fmt.Sprint(p), "-u", "alice", "-V", v); code != 0 {
				t.Fatalf("-V %s right password from FENNEC_PASSWORD: exit %d %s", v, code, errout)
			}
			// a SUBACK failure code for a filter the ACL does not allow
			code, out, errout = run(t, "sub", "-t", "open/x", "-t", "closed/#", "-h", h, "-p", fmt.Sprint(p), "-u", "alice", "-V", v, "-C", "1", "--json")
			if code != cmdutil.ExitRefused || !strings.Contains(errout, `refused the subscription to "closed/#"`) || !strings.Contains(errout, "hint: step: MQTT SUBSCRIBE") || !strings.Contains(out, `"exit_code":4`) {
				t.Fatalf("-V %s refused subscription: exit %d\nstdout: %s\nstderr: %s", v, code, out, errout)
			}
		}
	})

	t.Run("interrupted", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		h, p := cmdutil.SplitHostPort(b.TCPAddr)
		sub, subErr := start(t, ctx, "<- SUBACK", "sub", "-t", "never/#", "-h", h, "-p", fmt.Sprint(p), "-d")
		waitSeen(t, subErr, sub, "sub")
		cancel()
		if r := wait(t, sub, "sub"); r.code != cmdutil.ExitInterrupted {
			t.Fatalf("exit %d, want 130; %s", r.code, r.errout)
		}
	})
}

// TestDemo: `fennec demo` with no flags exits 0 with every message received.
func TestDemo(t *testing.T) {
	isolate(t)
	code, out, errout := run(t, "demo")
	if code != 0 {
		t.Fatalf("demo: exit %d\nstdout: %s\nstderr: %s", code, out, errout)
	}
	for _, want := range []string{"TLS 1.3", "client certificate: requested by the server, sent", "-> CONNECT", "<- CONNACK",
		"PUBREC", "PUBCOMP", "result: OK — 3 of 3 messages received over TLS 1.3 with mutual TLS"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = run(t, "demo", "--json")
	if code != 0 {
		t.Fatalf("demo --json: exit %d", code)
	}
	var last map[string]any
	received := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if err := json.Unmarshal([]byte(l), &last); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		if last["step"] == "message" && last["received"] == true {
			received++
		}
	}
	if received != 3 || last["step"] != "summary" || last["ok"] != true {
		t.Fatalf("demo --json: %d received, last %v", received, last)
	}
}

// TestDemoAgainstBroker: the demo with --broker and certificate flags runs against another
// broker (here mosquitto requiring client certificates), and explains a failure.
func TestDemoAgainstBroker(t *testing.T) {
	isolate(t)
	m, files := mosquittoMTLS(t)
	cert, key := files.FirstClient(m.pki)
	code, out, errout := run(t, "demo", "--broker", "mqtts://"+m.TLSAddr, "--cafile", files.CA, "--cert", cert, "--key", key)
	if code != 0 || !strings.Contains(out, "3 of 3 messages received") {
		t.Fatalf("demo against mosquitto: exit %d\n%s\n%s", code, out, errout)
	}
	code, out, errout = run(t, "demo", "--broker", "mqtts://"+m.TLSAddr, "--cafile", files.CA)
	if code != cmdutil.ExitNetwork || !strings.Contains(errout, "step: TLS") {
		t.Fatalf("demo without a client certificate: exit %d\n%s\n%s", code, out, errout)
	}
}

type mosq struct {
	*mosquittotest.Broker
	pki *devpki.PKI
}

func mosquittoMTLS(t *testing.T) (mosq, devpki.Files) {
	t.Helper()
	mosquittotest.Require(t, "mosquitto_pub", "mosquitto_sub")
	p, err := devpki.Generate(devpki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	files, err := p.WriteDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := mosquittotest.Start(t, mosquittotest.Options{TLS: &mosquittotest.TLS{CAFile: files.CA, CertFile: files.ServerCert, KeyFile: files.ServerKey, RequireCertificate: true, Version: "tlsv1.2"}})
	return mosq{b, p}, files
}

// TestMosquittoInterop: mosquitto_sub receives what fennec pub sends and fennec sub receives
// what mosquitto_pub sends, over TLS with client certificates, for MQTT 3.1.1 and 5.
func TestMosquittoInterop(t *testing.T) {
	isolate(t)
	m, files := mosquittoMTLS(t)
	cert, key := files.FirstClient(m.pki)
	host, port := cmdutil.SplitHostPort(m.TLSAddr)
	tlsArgs := []string{"-h", host, "-p", fmt.Sprint(port), "--cafile", files.CA, "--cert", cert, "--key", key}
	for _, v := range []struct{ fennec, mosq string }{{"5", "mqttv5"}, {"311", "mqttv311"}} {
		t.Run("fennec pub to mosquitto_sub "+v.mosq, func(t *testing.T) {
			// retained, so that mosquitto_sub gets it whenever its subscription is in place
			topic := "interop/" + v.mosq + "/in"
			if code, out, e := run(t, append([]string{"pub", "-V", v.fennec, "-t", topic, "-m", "from fennec", "-q", "1", "-r"}, tlsArgs...)...); code != 0 {
				t.Fatalf("fennec pub: exit %d %s %s", code, out, e)
			}
			out, err := exec.Command("mosquitto_sub", append([]string{"-V", v.mosq, "-t", topic, "-C", "1", "-W", "20", "-v", "-q", "1"}, tlsArgs...)...).CombinedOutput()
			if err != nil || string(out) != topic+" from fennec\n" {
				t.Fatalf("mosquitto_sub: %v, printed %q", err, out)
			}
		})
		t.Run("mosquitto_pub to fennec sub "+v.mosq, func(t *testing.T) {
			topic := "interop/" + v.mosq + "/out"
			sub, subErr := start(t, context.Background(), "<- SUBACK", append([]string{"sub", "-V", v.fennec, "-t", topic, "-C", "1", "-W", "20", "-v", "-q", "2", "-d"}, tlsArgs...)...)
			waitSeen(t, subErr, sub, "fennec sub")
			out, err := exec.Command("mosquitto_pub", append([]string{"-V", v.mosq, "-t", topic, "-m", "from mosquitto", "-q", "2"}, tlsArgs...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("mosquitto_pub: %v %s", err, out)
			}
			r := wait(t, sub, "fennec sub")
			if r.code != 0 || r.out != topic+" from mosquitto\n" {
				t.Fatalf("fennec sub: exit %d, stdout %q\n%s", r.code, r.out, r.errout)
			}
		})
	}
}

// TestURLFormLikeMosquitto: the same -L mqtts://user@host:port/topic URL works for fennec pub
// and mosquitto_sub, with client certificates.
func TestURLFormLikeMosquitto(t *testing.T) {
	isolate(t)
	m, files := mosquittoMTLS(t)
	cert, key := files.FirstClient(m.pki)
	certs := []string{"--cafile", files.CA, "--cert", cert, "--key", key}
	url := "mqtts://dev@" + m.TLSAddr + "/url/form"
	if code, out, errout := run(t, append([]string{"pub", "-L", url, "-m", "via -L", "-r", "-q", "1"}, certs...)...); code != 0 {
		t.Fatalf("fennec pub -L: exit %d %s %s", code, out, errout)
	}
	out, err := exec.Command("mosquitto_sub", append([]string{"-L", url, "-C", "1", "-W", "20", "-v"}, certs...)...).CombinedOutput()
	if err != nil || string(out) != "url/form via -L\n" {
		t.Fatalf("mosquitto_sub -L: %v %q", err, out)
	}
	code, got, errout := run(t, append([]string{"sub", "-L", url, "-C", "1", "-v"}, certs...)...)
	if code != 0 || got != string(out) {
		t.Fatalf("fennec sub -L: exit %d %q %s", code, got, errout)
	}
}

// TestBinary builds the real fennec binary and runs it: the demo exits 0, a refused TCP
// connection exits 3, and -h is the host while --help is help.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	isolate(t)
	bin := filepath.Join(t.TempDir(), "fennec")
	build := exec.Command("go", "build", "-o", bin, "github.com/fennec-mqtt/fennec/cmd/fennec")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "demo").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "result: OK") {
		t.Fatalf("fennec demo: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "pub", "-h", "127.0.0.1", "-p", fmt.Sprint(mosquittotest.FreePort(t)), "-t", "x", "-m", "y")
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != cmdutil.ExitNetwork || !strings.Contains(string(out), "hint: step: TCP") {
		t.Fatalf("refused connection: exit %d\n%s", cmd.ProcessState.ExitCode(), out)
	}
	out, err = exec.Command(bin, "pub", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Examples:") || !strings.Contains(string(out), "-h, --host") {
		t.Fatalf("pub --help: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "help", "exit-codes").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "130") {
		t.Fatalf("help exit-codes: %v\n%s", err, out)
	}
}

// TestRefusedAndTimeout: a server that closes the connection right after CONNECT (the AWS IoT
// emulation with a client ID its policy does not allow) exits 4 with the MQTT-step hint; a
// server that accepts TCP and never answers CONNECT exits 5.
func TestRefusedAndTimeout(t *testing.T) {
	isolate(t)
	pol, err := broker.ParsePolicy([]byte(`{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"arn:aws:iot:us-east-1:123456789012:topic/things/${iot:ClientId}/*"},
	  {"Effect":"Allow","Action":"iot:Subscribe","Resource":"arn:aws:iot:us-east-1:123456789012:topicfilter/things/${iot:ClientId}/*"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, brokertest.Options{Clients: []string{"dev1"}, AWS: &broker.AWS{Policy: pol}})
	h, p := cmdutil.SplitHostPort(b.TLSAddr)
	tlsArgs := []string{"-h", h, "-p", fmt.Sprint(p), "--cafile", b.CAFile, "--cert", b.ClientCert, "--key", b.ClientKey}
	for _, v := range []string{"5", "311"} {
		code, out, errout := run(t, append([]string{"pub", "-V", v, "-i", "not-dev1", "-t", "things/dev1/x", "-m", "hi", "-q", "1"}, tlsArgs...)...)
		if code != cmdutil.ExitRefused || !strings.Contains(errout, "hint: step: MQTT — CONNECT") || !strings.Contains(errout, "without a CONNACK") {
			t.Fatalf("-V %s denied connect: exit %d\n%s%s", v, code, out, errout)
		}
		// the same certificate with the client ID the policy allows: the demo works, at QoS 0 and 1
		code, out, errout = run(t, append([]string{"demo", "-V", v, "-i", "dev1", "--topic", "things/dev1/demo", "--qos", "0,1"}, tlsArgs...)...)
		if code != 0 || !strings.Contains(out, "2 of 2 messages received") {
			t.Fatalf("-V %s allowed demo: exit %d\n%s%s", v, code, out, errout)
		}
	}
	// QoS 2: MQTT 5 learns from CONNACK (Maximum QoS 1) and refuses before sending; the
	// connection is not lost, so the exit says refused, with the QoS to use
	code, out, errout := run(t, append([]string{"pub", "-V", "5", "-i", "dev1", "-t", "things/dev1/x", "-m", "hi", "-q", "2"}, tlsArgs...)...)
	if code != cmdutil.ExitRefused || !strings.Contains(errout, "not supported by the broker: QoS 2 (its Maximum QoS is 1)") || !strings.Contains(errout, "hint: fix: publish with a lower QoS") {
		t.Fatalf("-V 5 -q 2 against Maximum QoS 1: exit %d\n%s%s", code, out, errout)
	}

	// accepts TCP, never answers
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	h, p = cmdutil.SplitHostPort(ln.Addr().String())
	code, out, errout = run(t, "pub", "-h", h, "-p", fmt.Sprint(p), "-t", "x", "-m", "y", "--connect-timeout", "300ms", "--json")
	if code != cmdutil.ExitTimeout || !strings.Contains(errout, "hint:") || !strings.Contains(out, `"exit_code":5`) {
		t.Fatalf("silent server: exit %d\n%s%s", code, out, errout)
	}
}

// TestTLSOptionsAndProfile: --keylog writes the TLS secrets, --insecure warns, and a profile
// supplies broker, certificates and topic.
func TestTLSOptionsAndProfile(t *testing.T) {
	isolate(t)
	b := brokertest.Start(t, brokertest.Options{})
	h, p := cmdutil.SplitHostPort(b.TLSAddr)
	keylog := filepath.Join(t.TempDir(), "keys.log")
	code, _, errout := run(t, "pub", "-h", h, "-p", fmt.Sprint(p), "--cafile", b.CAFile, "--cert", b.ClientCert, "--key", b.ClientKey,
		"--keylog", keylog, "-t", "k", "-m", "v")
	if code != 0 {
		t.Fatalf("--keylog: exit %d %s", code, errout)
	}
	if kl, err := os.ReadFile(keylog); err != nil || !strings.Contains(string(kl), "CLIENT_HANDSHAKE_TRAFFIC_SECRET") {
		t.Fatalf("key log: %v %q", err, kl)
	}
	code, _, errout = run(t, "pub", "-h", h, "-p", fmt.Sprint(p), "--insecure", "--cert", b.ClientCert, "--key", b.ClientKey, "-t", "k", "-m", "v")
	if code != 0 || !strings.Contains(errout, "WARNING: --insecure") {
		t.Fatalf("--insecure: exit %d %s", code, errout)
	}

	dir := os.Getenv("XDG_CONFIG_HOME")
	os.MkdirAll(filepath.Join(dir, "fennec"), 0o700)
	conf := fmt.Sprintf("[profiles.local]\nbroker = %q\ncafile = %q\ncert = %q\nkey = %q\ntopic = \"prof/t\"\nqos = 1\n",
		"mqtts://"+b.TLSAddr, b.CAFile, b.ClientCert, b.ClientKey)
	if err := os.WriteFile(filepath.Join(dir, "fennec", "config.toml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errout := run(t, "pub", "--profile", "local", "-m", "from a profile", "-r", "--json")
	if code != 0 || !strings.Contains(out, `"topic":"prof/t"`) || !strings.Contains(out, `"qos":1`) {
		t.Fatalf("pub --profile: exit %d\n%s%s", code, out, errout)
	}
	code, out, errout = run(t, "sub", "--profile", "local", "-C", "1", "-W", "10", "-v")
	if code != 0 || out != "prof/t from a profile\n" {
		t.Fatalf("sub --profile: exit %d %q %s", code, out, errout)
	}
}

// TestPubLinesAndFile: -l sends each line of stdin as a message at QoS 0, in order, and -s and
// -f send stdin and a file as one message each; -N and -F shape the output.
func TestPubLinesAndFile(t *testing.T) {
	isolate(t)
	b := brokertest.Start(t, brokertest.Options{})
	h, p := cmdutil.SplitHostPort(b.TCPAddr)
	conn := []string{"-h", h, "-p", fmt.Sprint(p)}
	sub, subErr := start(t, context.Background(), "<- SUBACK", append([]string{"sub", "-t", "lines", "-C", "5", "-W", "20", "-F", `%p|`, "-N", "-d"}, conn...)...)
	waitSeen(t, subErr, sub, "sub")
	runIn := func(stdin string, args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := Run(context.Background(), append(args, conn...), IO{In: strings.NewReader(stdin), Out: &out, Err: &errb}); code != 0 {
			t.Fatalf("%q: exit %d %s", args, code, errb.String())
		}
	}
	runIn("one\ntwo\r\nthree", "pub", "-t", "lines", "-l") // a '\r' stays, as with mosquitto_pub
	runIn("all\nof stdin", "pub", "-t", "lines", "-s", "-q", "1")
	file := filepath.Join(t.TempDir(), "payload.bin")
	os.WriteFile(file, []byte("from a file"), 0o600)
	runIn("", "pub", "-t", "lines", "-f", file, "-q", "2")
	r := wait(t, sub, "sub")
	// What is guaranteed: every message arrives once, and one publisher's messages in the order
	// it sent them; across publishers the broker may interleave (the QoS 0 lines may still be
	// on their way when the next publisher's message arrives).
	got := strings.Split(strings.TrimSuffix(r.out, "|"), "|")
	want := map[string]int{"one": 0, "two\r": 0, "three": 0, "all\nof stdin": 0, "from a file": 0}
	var lines []string
	for _, m := range got {
		if _, ok := want[m]; !ok {
			t.Fatalf("unexpected message %q in %q", m, r.out)
		}
		want[m]++
		if m == "one" || m == "two\r" || m == "three" {
			lines = append(lines, m)
		}
	}
	for m, n := range want {
		if n != 1 {
			t.Fatalf("message %q arrived %d times: stdout %q\n%s", m, n, r.out, r.errout)
		}
	}
	if r.code != 0 || strings.Join(lines, "|") != "one|two\r|three" {
		t.Fatalf("exit %d, the -l lines out of order: stdout %q\n%s", r.code, r.out, r.errout)
	}
}

// TestProperties: MQTT 5 properties given with -D reach the subscriber, which shows them in
// --json and with -F.
func TestProperties(t *testing.T) {
	isolate(t)
	b := brokertest.Start(t, brokertest.Options{})
	h, p := cmdutil.SplitHostPort(b.TCPAddr)
	conn := []string{"-h", h, "-p", fmt.Sprint(p)}
	pub := append([]string{"pub", "-t", "props/x", "-m", `{"a":1}`, "-q", "1", "-r",
		"-D", "publish", "content-type", "application/json", "-D", "publish", "user-property", "src", "cli",
		"-D", "publish", "response-topic", "replies/x", "-D", "publish", "correlation-data", "42",
		"-D", "connect", "user-property", "who", "test"}, conn...)
	if code, _, errout := run(t, pub...); code != 0 {
		t.Fatalf("pub: %d %s", code, errout)
	}
	code, out, errout := run(t, append([]string{"sub", "-t", "props/#", "-C", "1", "--json"}, conn...)...)
	if code != 0 {
		t.Fatalf("sub: %d %s", code, errout)
	}
	var m struct {
		Retain bool `json:"retain"`
		Props  struct {
			ContentType   string      `json:"content_type"`
			ResponseTopic string      `json:"response_topic"`
			Correlation   []byte      `json:"correlation_data"`
			User          [][2]string `json:"user_properties"`
		} `json:"properties"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if !m.Retain || m.Props.ContentType != "application/json" || m.Props.ResponseTopic != "replies/x" || string(m.Props.Correlation) != "42" ||
		len(m.Props.User) != 1 || m.Props.User[0] != [2]string{"src", "cli"} {
		t.Fatalf("properties: %s", out)
	}
	code, out, _ = run(t, append([]string{"sub", "-t", "props/#", "-C", "1", "-F", "%C %R %D %P %J"}, conn...)...)
	if code != 0 || !strings.HasPrefix(out, `application/json replies/x 42 src:cli {"tst":`) || !strings.Contains(out, `"payload":{"a":1}}`) {
		t.Fatalf("-F: %d %q", code, out)
	}
}

// waitText polls w until it holds s, the command ends, or a generous bound passes.
func waitText(t *testing.T, w *watchBuf, done <-chan result, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(w.String(), s) {
		select {
		case r := <-done:
			t.Fatalf("ended before printing %q: exit %d\nstdout: %s\nstderr: %s", s, r.code, r.out, r.errout)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("never printed %q; stderr so far:\n%s", s, w.String())
		}
	}
}

// TestSubConnectionLost: when the broker drops sub's connection, sub says so once, in plain
// words ("fennec: connection lost: CAUSE (reconnecting)"), reconnects, resubscribes and goes on.
func TestSubConnectionLost(t *testing.T) {
	isolate(t)
	b := brokertest.Start(t, brokertest.Options{})
	h, p := cmdutil.SplitHostPort(b.TCPAddr)
	conn := []string{"-h", h, "-p", fmt.Sprint(p)}
	sub, subErr := start(t, context.Background(), "<- SUBACK", append([]string{"sub", "-i", "lost1", "-t", "lost/#", "-C", "1", "-W", "60", "-v", "-d"}, conn...)...)
	waitSeen(t, subErr, sub, "sub")
	if err := b.Faults().DropClient("lost1"); err != nil {
		t.Fatal(err)
	}
	waitText(t, subErr, sub, "(reconnecting)")
	// retained: it reaches the subscription whenever the resubscription is in place
	if code, _, errout := run(t, append([]string{"pub", "-t", "lost/x", "-m", "after", "-r", "-q", "1"}, conn...)...); code != 0 {
		t.Fatalf("pub: exit %d %s", code, errout)
	}
	r := wait(t, sub, "sub")
	if r.code != 0 || r.out != "lost/x after\n" {
		t.Fatalf("sub after reconnecting: exit %d, stdout %q\n%s", r.code, r.out, r.errout)
	}
	var lost []string
	for _, l := range strings.Split(r.errout, "\n") {
		if strings.Contains(l, "connection lost") {
			lost = append(lost, l)
		}
	}
	if len(lost) == 0 || !strings.Contains(r.errout, "\nfennec: connection lost: ") {
		t.Fatalf("no line about the lost connection:\n%s", r.errout)
	}
	for _, l := range lost {
		if strings.Count(l, "connection lost") != 1 || strings.Contains(l, "fennec: fennec") || strings.Count(l, "fennec: ") > 1 {
			t.Errorf("repetitive line: %q", l)
		}
	}
}

// TestSecretsNeverPrinted: passwords given in a -L URL, with -P, with FENNEC_PASSWORD or in a
// profile appear in no output: not in error lines, not in --json, not in the -d trace.
func TestSecretsNeverPrinted(t *testing.T) {
	isolate(t)
	const secret = "hunter2-s3cret"
	b := brokertest.Start(t, brokertest.Options{})
	h, p := cmdutil.SplitHostPort(b.TCPAddr)
	free := mosquittotest.FreePort(t)
	dir := os.Getenv("XDG_CONFIG_HOME")
	os.MkdirAll(filepath.Join(dir, "fennec"), 0o700)
	conf := fmt.Sprintf("[profiles.p]\nbroker = \"mqtt://%s\"\nusername = \"u\"\npassword = %q\n", b.TCPAddr, secret)
	if err := os.WriteFile(filepath.Join(dir, "fennec", "config.toml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// a config file with a typo next to the password
	typo := filepath.Join(t.TempDir(), "typo.toml")
	if err := os.WriteFile(typo, []byte(fmt.Sprintf("[profiles.p]\nusername = \"u\"\npassword = %q\nbrokr = \"x\"\n", secret)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"pub", "--config", typo, "--profile", "p", "-t", "t", "-m", "x", "--json"},
		{"pub", "-L", "mqtt://u:" + secret + "@127.0.0.1:99999/t", "-m", "x", "--json"},                   // bad port
		{"pub", "-L", "mqtt://u:" + secret + "@[::1/t", "-m", "x", "--json"},                              // unparsable
		{"pub", "-L", "bad://u:" + secret + "@h/t", "-m", "x", "--json"},                                  // unknown scheme
		{"pub", "-L", fmt.Sprintf("mqtt://u:%s@127.0.0.1:%d/t", secret, free), "-m", "x", "--json", "-d"}, // refused
		{"pub", "-L", fmt.Sprintf("mqtt://u:%s@%s/t", secret, b.TCPAddr), "-m", "x", "--json", "-d"},
		{"pub", "-h", h, "-p", fmt.Sprint(p), "-u", "u", "-P", secret, "-t", "t", "-m", "x", "--json", "-d"},
		{"pub", "-h", h, "-p", fmt.Sprint(p), "-u", "u", "-t", "t", "-m", "x", "--json", "-d", "-V", "311"},
		{"sub", "--profile", "p", "-t", "t", "-E", "--json", "-d"},
		{"demo", "--broker", "mqtt://u:" + secret + "@" + b.TCPAddr, "--json", "-d"},
		{"demo", "--broker", "mqtt://u:" + secret + "@" + b.TCPAddr, "-d"},
	} {
		t.Setenv("FENNEC_PASSWORD", secret)
		code, out, errout := run(t, args...)
		if strings.Contains(out+errout, secret) {
			t.Errorf("%q (exit %d) printed the password:\nstdout: %s\nstderr: %s", args, code, out, errout)
		}
	}
}

// TestSubOutputLikeMosquittoSub: with the same flags, fennec sub prints byte for byte what
// mosquitto_sub prints (-v, -T, --retained-only, -F, -N), against mosquitto; and -R with -C, and
// empty messages (-n), behave as mosquitto_sub documents.
func TestSubOutputLikeMosquittoSub(t *testing.T) {
	isolate(t)
	mosquittotest.Require(t, "mosquitto_pub", "mosquitto_sub")
	m := mosquittotest.Start(t, mosquittotest.Options{})
	h, p := cmdutil.SplitHostPort(m.Addr)
	conn := []string{"-h", h, "-p", fmt.Sprint(p)}
	for _, r := range [][2]string{{"v/a", "hello"}, {"f/skip/1", "no"}, {"f/keep", "yes"}, {"g/old", "stale"}} {
		if code, _, errout := run(t, append([]string{"pub", "-t", r[0], "-m", r[1], "-r", "-q", "1"}, conn...)...); code != 0 {
			t.Fatalf("pub %s: exit %d %s", r[0], code, errout)
		}
	}
	for _, args := range [][]string{
		{"-t", "v/a", "-v", "-C", "1"},
		{"-t", "f/#", "-T", "f/skip/#", "-v", "-C", "1"}, // filtered messages do not count
		{"-t", "f/keep", "-t", "v/a", "-N", "-C", "2"},
		{"-t", "v/a", "-F", `%t|%p|%q|%r|%l|%x\t@Y`, "-C", "1"},
		{"-t", "v/a", "-F", "%t", "-v", "-C", "1"}, // -F overrides -v
		{"-t", "v/a", "--retained-only", "-v", "-C", "1"},
	} {
		args = append(args, conn...)
		want, _ := exec.Command("mosquitto_sub", args...).Output()
		_, got, errout := run(t, append([]string{"sub"}, args...)...)
		if len(want) == 0 || got != string(want) {
			t.Errorf("sub %q: fennec printed %q, mosquitto_sub %q\n%s", args, got, want, errout)
		}
	}

	// -R -C 1: the retained message is skipped and does not count; the fresh one ends it
	sub, subErr := start(t, context.Background(), "<- SUBACK", append([]string{"sub", "-t", "g/#", "-R", "-C", "1", "-W", "30", "-v", "-d"}, conn...)...)
	waitSeen(t, subErr, sub, "sub -R")
	if code, _, errout := run(t, append([]string{"pub", "-t", "g/new", "-m", "fresh"}, conn...)...); code != 0 {
		t.Fatalf("pub: exit %d %s", code, errout)
	}
	if r := wait(t, sub, "sub -R"); r.code != 0 || r.out != "g/new fresh\n" {
		t.Fatalf("sub -R -C 1: exit %d %q\n%s", r.code, r.out, r.errout)
	}

	// a retained message published while subscribed arrives with retain 0, unless
	// --retain-as-published (MQTT 5) [MQTT-3.3.1-12], [MQTT-3.3.1-13]
	// Each case has its own topic: a retained message left by one case would otherwise reach
	// the next one's subscription as a retained message (retain 1 whatever the flag).
	for i, tc := range []struct{ flag, want string }{{"--quiet", "0\n"}, {"--retain-as-published", "1\n"}} {
		flag, want, tp := tc.flag, tc.want, fmt.Sprintf("rap/%d", i)
		sub, subErr := start(t, context.Background(), "<- SUBACK", append([]string{"sub", "-t", tp, "-F", "%r", "-C", "1", "-W", "30", "-d", flag}, conn...)...)
		waitSeen(t, subErr, sub, "sub "+flag)
		if code, _, errout := run(t, append([]string{"pub", "-t", tp, "-m", "live", "-r"}, conn...)...); code != 0 {
			t.Fatalf("pub: exit %d %s", code, errout)
		}
		if r := wait(t, sub, "sub "+flag); r.code != 0 || r.out != want {
			t.Errorf("sub %s: exit %d, retain printed %q, want %q", flag, r.code, r.out, want)
		}
	}
	if code, _, _ := run(t, append([]string{"sub", "-t", "rap/x", "-V", "311", "--retain-as-published"}, conn...)...); code != cmdutil.ExitUsage {
		t.Errorf("--retain-as-published -V 311: exit %d, want %d", code, cmdutil.ExitUsage)
	}

	// empty messages: "TOPIC (null)" with -v; nothing at all without -v (but they count for -C)
	for _, tc := range []struct {
		flags []string
		want  string
	}{{[]string{"-v", "-C", "2"}, "n/x (null)\nn/x after\n"}, {[]string{"-C", "2"}, "after\n"}} {
		sub, subErr := start(t, context.Background(), "<- SUBACK", append(append([]string{"sub", "-t", "n/x", "-W", "30", "-d"}, tc.flags...), conn...)...)
		waitSeen(t, subErr, sub, "sub")
		for _, msg := range [][]string{{"-n"}, {"-m", "after"}} {
			if code, _, errout := run(t, append(append([]string{"pub", "-t", "n/x", "-q", "1"}, msg...), conn...)...); code != 0 {
				t.Fatalf("pub %q: exit %d %s", msg, code, errout)
			}
		}
		if r := wait(t, sub, "sub"); r.code != 0 || r.out != tc.want {
			t.Errorf("sub %q: exit %d, printed %q, want %q", tc.flags, r.code, r.out, tc.want)
		}
	}
}

// TestPersistentSessionAndWill: -c keeps the subscription and queues QoS 1 messages while the
// client is away, for MQTT 5 and 3.1.1 (against mosquitto); a will message set with --will-*
// is published when the connection breaks without DISCONNECT (the embedded broker drops it).
func TestPersistentSessionAndWill(t *testing.T) {
	isolate(t)
	mosquittotest.Require(t, "mosquitto")
	m := mosquittotest.Start(t, mosquittotest.Options{})
	h, p := cmdutil.SplitHostPort(m.Addr)
	conn := []string{"-h", h, "-p", fmt.Sprint(p)}
	for _, v := range []string{"5", "311"} {
		id, topic := "persist-"+v, "persist/"+v
		if code, _, errout := run(t, append([]string{"sub", "-V", v, "-c", "-i", id, "-q", "1", "-t", topic, "-E"}, conn...)...); code != 0 {
			t.Fatalf("-V %s sub -c -E: exit %d %s", v, code, errout)
		}
		if code, _, errout := run(t, append([]string{"pub", "-V", v, "-t", topic, "-m", "queued", "-q", "1"}, conn...)...); code != 0 {
			t.Fatalf("-V %s pub: exit %d %s", v, code, errout)
		}
		// no -t: the session still holds the subscription
		code, out, errout := run(t, append([]string{"sub", "-V", v, "-c", "-i", id, "-U", "none/such", "-C", "1", "-W", "30"}, conn...)...)
		if code != 0 || out != "queued\n" {
			t.Fatalf("-V %s sub -c again: exit %d %q %s", v, code, out, errout)
		}
	}
	if code, _, errout := run(t, "sub", "-c", "-t", "x", "-E", "-h", h, "-p", fmt.Sprint(p)); code != cmdutil.ExitUsage || !strings.Contains(errout, "-i") {
		t.Fatalf("-c without -i: exit %d %s", code, errout)
	}

	b := brokertest.Start(t, brokertest.Options{})
	h, p = cmdutil.SplitHostPort(b.TCPAddr)
	conn = []string{"-h", h, "-p", fmt.Sprint(p)}
	watcher, wErr := start(t, context.Background(), "<- SUBACK", append([]string{"sub", "-t", "status/#", "-C", "1", "-W", "30", "-v", "-d"}, conn...)...)
	waitSeen(t, wErr, watcher, "watcher")
	devCtx, stopDev := context.WithCancel(context.Background())
	defer stopDev()
	dev, devErr := start(t, devCtx, "<- SUBACK", append([]string{"sub", "-i", "dev-will", "-t", "cmd/dev", "-d",
		"--will-topic", "status/dev", "--will-payload", "gone", "--will-qos", "1"}, conn...)...)
	waitSeen(t, devErr, dev, "device")
	if err := b.Faults().DropClient("dev-will"); err != nil {
		t.Fatal(err)
	}
	if r := wait(t, watcher, "watcher"); r.code != 0 || r.out != "status/dev gone\n" {
		t.Fatalf("will: exit %d %q %s", r.code, r.out, r.errout)
	}
	stopDev()
	if r := wait(t, dev, "device"); r.code != cmdutil.ExitInterrupted {
		t.Fatalf("device: exit %d %s", r.code, r.errout)
	}
}

// TestConnectionFlags: --capath, --tls-version, --servername, -k, -I, -x and --repeat take
// effect on the wire (seen in the -d trace and in what mosquitto accepts).
func TestConnectionFlags(t *testing.T) {
	isolate(t)
	m, files := mosquittoMTLS(t) // TLS 1.2 or newer, client certificate required
	cert, key := files.FirstClient(m.pki)
	host, port := cmdutil.SplitHostPort(m.TLSAddr)
	capath := t.TempDir()
	ca, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(capath, "ca.pem"), ca, 0o600)
	os.WriteFile(filepath.Join(capath, "README"), []byte("not a certificate"), 0o600)
	base := []string{"pub", "-h", host, "-p", fmt.Sprint(port), "--capath", capath, "--cert", cert, "--key", key, "-t", "flags/x", "-m", "hi", "-d"}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--tls-version", "tlsv1.2"}, []string{"TLS 1.2, cipher"}},
		{[]string{"--tls-version", "tlsv1.3"}, []string{"TLS 1.3, cipher"}},
		{[]string{"-h", "127.0.0.1", "--servername", "localhost"}, []string{`server name "localhost"`}},
		{[]string{"-k", "7", "-I", "pre-", "-x", "60"}, []string{"keepalive=7s", fmt.Sprintf(`client-id="pre-%d"`, os.Getpid()), "Session Expiry Interval=60"}},
		{[]string{"--repeat", "3", "-q", "1", "--json"}, []string{"PUBACK id=3"}},
	} {
		code, out, errout := run(t, append(append([]string{}, base...), tc.args...)...)
		if code != 0 {
			t.Fatalf("%q: exit %d\n%s%s", tc.args, code, out, errout)
		}
		for _, w := range tc.want {
			if !strings.Contains(errout, w) {
				t.Errorf("%q: trace lacks %q:\n%s", tc.args, w, errout)
			}
		}
		if tc.args[0] == "--repeat" && strings.Count(out, `"result":"ok"`) != 3 {
			t.Errorf("--repeat 3 --json: %q", out)
		}
	}
	// a name the server certificate does not hold: exit 3, the TLS step, the names it holds
	code, _, errout := run(t, append(append([]string{}, base...), "--servername", "broker.example")...)
	if code != cmdutil.ExitNetwork || !strings.Contains(errout, "hint: step: TLS") || !strings.Contains(errout, "localhost") {
		t.Fatalf("--servername broker.example: exit %d\n%s", code, errout)
	}
}

// TestDemoHonoursMaximumQoS: against the AWS emulation on 127.0.0.1 (no AWS host name), the
// MQTT 5 demo learns Maximum QoS 1 from CONNACK and skips QoS 2 with a notice instead of
// failing; -q is accepted as in pub and sub; --aws (or a profile's aws = true) gives the AWS
// causes and defaults to the emulator's connections, which the host name alone did not.
func TestDemoHonoursMaximumQoS(t *testing.T) {
	isolate(t)
	pol, err := broker.ParsePolicy([]byte(`{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"arn:aws:iot:us-east-1:123456789012:topic/things/${iot:ClientId}/*"},
	  {"Effect":"Allow","Action":"iot:Subscribe","Resource":"arn:aws:iot:us-east-1:123456789012:topicfilter/things/${iot:ClientId}/*"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, brokertest.Options{Clients: []string{"dev1"}, AWS: &broker.AWS{Policy: pol}})
	h, p := cmdutil.SplitHostPort(b.TLSAddr)
	tlsArgs := []string{"-h", h, "-p", fmt.Sprint(p), "--cafile", b.CAFile, "--cert", b.ClientCert, "--key", b.ClientKey}
	code, out, errout := run(t, append([]string{"demo", "-i", "dev1", "--topic", "things/dev1/demo"}, tlsArgs...)...)
	if code != 0 || !strings.Contains(out, "the broker's CONNACK says Maximum QoS 1: QoS 2 skipped, demonstrating QoS 0,1") || !strings.Contains(out, "2 of 2 messages received") {
		t.Fatalf("demo against Maximum QoS 1: exit %d\n%s%s", code, out, errout)
	}
	code, out, errout = run(t, append([]string{"demo", "-i", "dev1", "--topic", "things/dev1/demo", "-q", "2"}, tlsArgs...)...)
	if code != 0 || !strings.Contains(out, "QoS 2 skipped, demonstrating QoS 1") || !strings.Contains(out, "1 of 1 messages received") {
		t.Fatalf("demo -q 2 against Maximum QoS 1: exit %d\n%s%s", code, out, errout)
	}
	// MQTT 3.1.1 has no Maximum QoS: --aws says what the broker is
	code, out, errout = run(t, append([]string{"demo", "-V", "311", "--aws", "-i", "dev1", "--topic", "things/dev1/demo"}, tlsArgs...)...)
	if code != 0 || !strings.Contains(out, "AWS IoT Core does not support QoS 2: QoS 2 skipped") || !strings.Contains(out, "2 of 2 messages received") {
		t.Fatalf("demo -V 311 --aws: exit %d\n%s%s", code, out, errout)
	}
	// a client ID the policy refuses: without --aws the generic causes, with it the AWS ones;
	// no guess about the protocol version either way
	for _, aws := range []bool{false, true} {
		args := append([]string{"demo", "-i", "not-dev1"}, tlsArgs...)
		if aws {
			args = append(args, "--aws")
		}
		code, out, errout = run(t, args...)
		if code != cmdutil.ExitRefused || strings.Contains(errout, "does it speak") || strings.Contains(errout, "iot:Connect") != aws {
			t.Fatalf("demo -i not-dev1, --aws %v: exit %d\n%s%s", aws, code, out, errout)
		}
	}
	// MQTT 5: the emulation names itself in CONNACK, so a refusal after connecting has AWS's
	// causes without --aws
	code, out, errout = run(t, append([]string{"sub", "-i", "dev1", "-t", "elsewhere/x", "-C", "1", "-W", "5"}, tlsArgs...)...)
	if code != cmdutil.ExitRefused || !strings.Contains(errout, "topicfilter/elsewhere/x") {
		t.Fatalf("sub outside the policy: exit %d\n%s%s", code, out, errout)
	}
	// a profile with aws = true does what --aws does
	cfgDir := os.Getenv("XDG_CONFIG_HOME")
	if err := os.MkdirAll(filepath.Join(cfgDir, "fennec"), 0o700); err != nil {
		t.Fatal(err)
	}
	prof := fmt.Sprintf("[profiles.emu]\nbroker = \"mqtts://%s\"\ncafile = %q\ncert = %q\nkey = %q\naws = true\n", b.TLSAddr, b.CAFile, b.ClientCert, b.ClientKey)
	if err := os.WriteFile(filepath.Join(cfgDir, "fennec", "config.toml"), []byte(prof), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errout = run(t, "pub", "--profile", "emu", "-i", "not-dev1", "-t", "things/dev1/x", "-m", "hi")
	if code != cmdutil.ExitRefused || !strings.Contains(errout, "iot:Connect on arn:aws:iot:REGION:ACCOUNT:client/not-dev1") {
		t.Fatalf("pub with an aws profile: exit %d\n%s%s", code, out, errout)
	}
}
