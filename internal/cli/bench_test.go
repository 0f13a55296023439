package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fennec-mqtt/fennec/bench"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
)

// pubsub over TLS 1.3 with mutual TLS at QoS 1: every message counted once by each
// subscriber, progress lines on stderr, the JSON result and the HTML report.
func TestBenchCommandPubSub(t *testing.T) {
	isolate(t)
	b := brokertest.Start(t, brokertest.Options{})
	host, port := cmdutil.SplitHostPort(b.TLSAddr)
	report := filepath.Join(t.TempDir(), "run.html")
	code, out, errout := run(t, "bench", "pubsub", "mqtts://"+host+":"+strconv.Itoa(port), "--cafile", b.CAFile, "--servername", "localhost",
		"--cert", b.ClientCert, "--key", b.ClientKey, "-n", "3", "--subscribers", "2", "-q", "1", "-C", "300", "-s", "100",
		"--json", "--report", report, "--interval", "20ms", "--progress", "lines")
	if code != cmdutil.ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errout)
	}
	var res bench.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if res.Connected != 5 || res.Sent != 900 || res.Received != 1800 || res.Receive.Unique != 1800 || res.Lost != 0 ||
		res.Receive.Duplicates != 0 || res.PayloadSize != 100 || res.QoS != 1 || res.Latency.Count != 1800 || res.AckLatency.Count != 900 {
		t.Fatalf("result %+v", res)
	}
	if !strings.Contains(errout, "fennec bench: ") || !strings.Contains(errout, "connected 5/5") {
		t.Fatalf("no progress lines: %s", errout)
	}
	page, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(page, []byte("<svg")) || !bytes.Contains(page, []byte(`id="latency"`)) || !bytes.Contains(page, []byte(`id="throughput"`)) {
		t.Fatalf("report without its charts: %.300s", page)
	}
}

// pub prints the summary a person reads; conn measures memory per connection.
func TestBenchCommandPubAndConn(t *testing.T) {
	isolate(t)
	b := brokertest.Start(t, brokertest.Options{})
	host, port := cmdutil.SplitHostPort(b.TCPAddr)
	code, out, errout := run(t, "bench", "pub", "-h", host, "-p", strconv.Itoa(port), "-n", "2", "-C", "50", "-q", "2", "--progress", "none", "-V", "311")
	if code != cmdutil.ExitOK || !strings.Contains(out, "fennec bench pub mqtt://") || !strings.Contains(out, "MQTT 3.1.1, QoS 2") ||
		!strings.Contains(out, "100 messages in") || !strings.Contains(out, "acknowledged in") || errout != "" {
		t.Fatalf("exit %d\n%s\n%s", code, out, errout)
	}
	code, out, errout = run(t, "bench", "conn", "-h", host, "-p", strconv.Itoa(port), "-n", "20", "--connect-rate", "200", "--duration", "200ms", "--json", "--progress", "none")
	var res bench.Result
	if err := json.Unmarshal([]byte(out), &res); code != cmdutil.ExitOK || err != nil {
		t.Fatalf("exit %d %v\n%s\n%s", code, err, out, errout)
	}
	if res.Connected != 20 || res.Connections != 20 || res.Memory.HeapPerConnection <= 0 || res.ConnectTime.Count != 20 {
		t.Fatalf("result %+v", res)
	}
}

// No broker: the first connect error explained, with the network's exit code; bad flags are
// usage errors before anything connects.
func TestBenchCommandErrors(t *testing.T) {
	isolate(t)
	code, out, errout := run(t, "bench", "pub", "-h", "127.0.0.1", "-p", "1", "-n", "2", "--progress", "none", "--connect-timeout", "2s")
	if code != cmdutil.ExitNetwork || !strings.Contains(errout, "none of the 2 clients connected") || !strings.Contains(errout, "refused") || !strings.Contains(errout, "fennec broker") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errout)
	}
	for _, args := range [][]string{
		{"bench", "pub", "-s", "10"},
		{"bench", "pub", "-q", "3"},
		{"bench", "sub", "--progress", "fancy"},
		{"bench", "conn", "-n", "-1"},
		{"bench", "conn", "--qos", "1"}, // conn has no QoS
		{"bench", "pub", "--interval", "0s"},
	} {
		if code, _, errout := run(t, args...); code != cmdutil.ExitUsage {
			t.Errorf("%q: exit %d, want %d: %s", args, code, cmdutil.ExitUsage, errout)
		}
	}
	dir := filepath.Join(t.TempDir(), "missing", "r.html")
	if code, _, errout := run(t, "bench", "pub", "-p", "1", "--report", dir); code != cmdutil.ExitError || !strings.Contains(errout, "--report") {
		t.Fatalf("unwritable report: exit %d: %s", code, errout)
	}
}

// Against mosquitto over TLS with client certificates (MQTT 5, QoS 2, and the idle
// connections of conn): the counts are exact and the connections all come up.
func TestBenchCommandMosquitto(t *testing.T) {
	isolate(t)
	m, files := mosquittoMTLS(t)
	cert, key := files.FirstClient(m.pki)
	host, port := cmdutil.SplitHostPort(m.TLSAddr)
	tlsArgs := []string{"-h", host, "-p", strconv.Itoa(port), "--cafile", files.CA, "--cert", cert, "--key", key, "--servername", "localhost"}
	code, out, errout := run(t, append([]string{"bench", "pubsub", "-n", "2", "--subscribers", "2", "-q", "2", "-C", "100", "--json", "--progress", "none"}, tlsArgs...)...)
	var res bench.Result
	if err := json.Unmarshal([]byte(out), &res); code != cmdutil.ExitOK || err != nil {
		t.Fatalf("exit %d %v\n%s\n%s", code, err, out, errout)
	}
	if res.Sent != 200 || res.Received != 400 || res.Receive.Unique != 400 || res.Lost != 0 || res.Receive.Duplicates != 0 || res.Version != "5.0" {
		t.Fatalf("result %+v", res)
	}
	code, out, errout = run(t, append([]string{"bench", "conn", "-n", "50", "--duration", "100ms", "--json", "--progress", "none"}, tlsArgs...)...)
	res = bench.Result{}
	if err := json.Unmarshal([]byte(out), &res); code != cmdutil.ExitOK || err != nil || res.Connected != 50 || res.ConnectErrors != 0 {
		t.Fatalf("exit %d %v %+v\n%s", code, err, res, errout)
	}
}
