package cli

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/awsiot"
	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
	"github.com/spf13/cobra"
)

// TestJobsCommands: fennec jobs list, next, describe, update and watch against the AWS
// emulation: a firmware job started, progressed and finished, the next job announced, and the
// exit codes and hints of a stale version and of a finished execution.
func TestJobsCommands(t *testing.T) {
	isolate(t)
	// the device may connect as dev1 and as dev1-<anything> (a second connection to watch)
	pol, err := broker.ParsePolicy([]byte(strings.Replace(cliShadowPolicy, "client/${iot:Connection.Thing.ThingName}", "client/${iot:Connection.Thing.ThingName}*", 1)))
	if err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, brokertest.Options{Clients: []string{"dev1"}, AWS: &broker.AWS{Policy: pol, Jobs: []broker.Job{
		{ID: "fw-1", Document: json.RawMessage(`{"operation":"update","url":"fw/1.2.bin"}`), Things: []string{"dev1"}},
		{ID: "cfg-2", Document: json.RawMessage(`{"operation":"config"}`), Things: []string{"dev1"}},
	}}})
	h, p := cmdutil.SplitHostPort(b.TLSAddr)
	jobs := func(args ...string) []string {
		return append(append([]string{"jobs"}, args...), "-h", h, "-p", fmt.Sprint(p), "--servername", "localhost",
			"--cafile", b.CAFile, "--cert", b.Files.ClientCert["dev1"], "--key", b.Files.ClientKey["dev1"], "-i", "dev1")
	}
	code, out, errout := run(t, jobs("list")...)
	if code != 0 || !strings.Contains(out, "QUEUED       fw-1") || !strings.Contains(out, "QUEUED       cfg-2") || strings.Index(out, "fw-1") > strings.Index(out, "cfg-2") {
		t.Fatalf("list: exit %d\n%s%s", code, out, errout)
	}
	if code, out, errout = run(t, jobs("next", "--peek", "--json")...); code != 0 || !strings.Contains(out, `"status":"QUEUED"`) {
		t.Fatalf("next --peek: exit %d\n%s%s", code, out, errout)
	}
	code, out, errout = run(t, jobs("next", "--detail", "step=download", "--json")...)
	var e struct {
		JobID         string            `json:"jobId"`
		Status        string            `json:"status"`
		StatusDetails map[string]string `json:"statusDetails"`
		JobDocument   map[string]any    `json:"jobDocument"`
		VersionNumber int64             `json:"versionNumber"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &e) != nil || e.JobID != "fw-1" || e.Status != "IN_PROGRESS" || e.StatusDetails["step"] != "download" || e.JobDocument["url"] != "fw/1.2.bin" {
		t.Fatalf("next: exit %d\n%s%s", code, out, errout)
	}
	if code, out, errout = run(t, jobs("update", "fw-1", "--status", "IN_PROGRESS", "--detail", "progress=50%", "--expected-version", "1")...); code != cmdutil.ExitRefused || !strings.Contains(errout, "VersionMismatch") || !strings.Contains(errout, "fennec jobs describe") {
		t.Fatalf("update at a stale version: exit %d\n%s%s", code, out, errout)
	}
	if code, out, errout = run(t, jobs("update", "fw-1", "--status", "IN_PROGRESS", "--detail", "progress=50%", "--expected-version", fmt.Sprint(e.VersionNumber))...); code != 0 || !strings.Contains(out, "fw-1: IN_PROGRESS (version 3)") {
		t.Fatalf("update: exit %d\n%s%s", code, out, errout)
	}
	if code, out, errout = run(t, jobs("describe", "fw-1", "--json")...); code != 0 || !strings.Contains(out, `"progress":"50%"`) {
		t.Fatalf("describe: exit %d\n%s%s", code, out, errout)
	}

	// watch announces the next job when fw-1 finishes; the update repeats until the watcher has
	// subscribed (the first SUCCEEDED finishes the job, later ones are refused as finished)
	type result struct {
		code     int
		out, err string
	}
	watched := make(chan result, 1)
	go func() {
		c, o, e := run(t, append(jobs("watch", "-C", "1", "--wait", "30s"), "-i", "dev1-watch", "--thing", "dev1")...)
		watched <- result{c, o, e}
	}()
	code, out, errout = run(t, jobs("update", "fw-1", "--status", "SUCCEEDED")...)
	if code != 0 {
		t.Fatalf("update SUCCEEDED: exit %d\n%s%s", code, out, errout)
	}
	// the watcher may have subscribed after that: a new job changes next again if so
	var w result
	select {
	case w = <-watched:
	case <-time.After(2 * time.Second):
		if err := b.CreateJob(broker.Job{ID: "late", Document: json.RawMessage(`{}`), Things: []string{"dev1"}}); err != nil {
			t.Fatal(err)
		}
		run(t, jobs("update", "cfg-2", "--status", "REJECTED")...)
		w = <-watched
	}
	if w.code != 0 || !strings.Contains(w.out, `"jobId":`) {
		t.Fatalf("watch: exit %d\n%s%s", w.code, w.out, w.err)
	}
	if code, out, errout = run(t, jobs("update", "fw-1", "--status", "FAILED")...); code != cmdutil.ExitRefused || !strings.Contains(errout, "InvalidStateTransition") || !strings.Contains(errout, "already done") {
		t.Fatalf("update of a finished execution: exit %d\n%s%s", code, out, errout)
	}
	if st, _, _ := b.JobExecution("dev1", "fw-1"); st != broker.JobSucceeded {
		t.Fatalf("fw-1 is %s", st)
	}
	for _, args := range [][]string{{"update", "fw-1"}, {"update", "fw-1", "--status", "CANCELED"}, {"update", "fw-1", "--status", "FAILED", "--detail", "novalue"}, {"describe"}} {
		if code, out, errout = run(t, jobs(args...)...); code != cmdutil.ExitUsage {
			t.Errorf("%q: exit %d, want usage\n%s%s", args, code, out, errout)
		}
	}
}

// --aws-endpoint: MQTT over TLS to the endpoint with the embedded Amazon roots (no --cafile),
// the ALPN on 443, and the AWS causes; checked without connecting, through the TLS setup.
func TestAWSEndpointFlag(t *testing.T) {
	isolate(t)
	amazon := x509.NewCertPool()
	for _, c := range awsiot.RootCAs() {
		amazon.AddCert(c)
	}
	for _, c := range []struct {
		endpoint string
		port     int
		alpn     string
	}{{"a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com", 8883, ""}, {"a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com:443", 443, "x-amzn-mqtt-ca"}} {
		c2 := &cobra.Command{Use: "x"}
		f := &cmdutil.ConnFlags{}
		f.Register(c2)
		if err := c2.ParseFlags([]string{"--aws-endpoint", c.endpoint, "-i", "dev1"}); err != nil {
			t.Fatal(err)
		}
		spec, err := f.BuildSpec(IO{Out: io.Discard, Err: io.Discard}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !spec.AWS || spec.Port != c.port || spec.TLS == nil || spec.TLS.RootCAs == nil || strings.Join(spec.TLS.NextProtos, ",") != c.alpn {
			t.Fatalf("%s: %+v", c.endpoint, spec)
		}
		if !spec.TLS.RootCAs.Equal(amazon) {
			t.Fatalf("%s: the trust is not the embedded Amazon roots", c.endpoint)
		}
	}
	if code, _, errout := run(t, "pub", "--aws-endpoint", "x-ats.iot.eu-west-1.amazonaws.com", "-h", "localhost", "-t", "a", "-m", "b"); code != cmdutil.ExitUsage || !strings.Contains(errout, "drop -L/-h") {
		t.Fatalf("--aws-endpoint with -h: %d %s", code, errout)
	}
}
