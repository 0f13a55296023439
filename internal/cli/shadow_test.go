package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
)

// cliShadowPolicy lets each thing connect as itself and use its own shadows, and "app" use
// every thing's shadows.
const cliShadowPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"},
 {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "arn:aws:iot:us-east-1:123456789012:topic/$aws/things/*"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:us-east-1:123456789012:topicfilter/$aws/things/*"}
]}`

// TestShadowCommands: fennec shadow get, update, watch and delete against the AWS emulation,
// with the exit codes and hints of a missing shadow and of a stale version.
func TestShadowCommands(t *testing.T) {
	isolate(t)
	pol, err := broker.ParsePolicy([]byte(cliShadowPolicy))
	if err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, brokertest.Options{Clients: []string{"dev1", "app"}, AWS: &broker.AWS{Policy: pol}})
	h, p := cmdutil.SplitHostPort(b.TLSAddr)
	as := func(cn string, args ...string) []string {
		return append(append([]string{"shadow"}, args...), "-h", h, "-p", fmt.Sprint(p), "--servername", "localhost",
			"--cafile", b.CAFile, "--cert", b.Files.ClientCert[cn], "--key", b.Files.ClientKey[cn], "-i", cn)
	}

	code, out, errout := run(t, as("dev1", "get")...)
	if code != cmdutil.ExitRefused || !strings.Contains(errout, "404") || !strings.Contains(errout, "no such shadow") {
		t.Fatalf("get of a missing shadow: exit %d\n%s%s", code, out, errout)
	}
	code, out, errout = run(t, as("dev1", "update", "--reported", `{"led":"off","temp":21}`, "--json")...)
	var doc struct {
		State struct {
			Reported map[string]any `json:"reported"`
			Desired  map[string]any `json:"desired"`
		} `json:"state"`
		Version int64 `json:"version"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || doc.State.Reported["led"] != "off" || doc.Version != 1 {
		t.Fatalf("update --reported: exit %d\n%s%s", code, out, errout)
	}
	if code, out, errout = run(t, as("dev1", "update")...); code != cmdutil.ExitUsage || !strings.Contains(errout, "nothing to update") {
		t.Fatalf("update without a state: exit %d\n%s%s", code, out, errout)
	}
	if code, out, errout = run(t, as("dev1", "update", "--desired", "{led")...); code != cmdutil.ExitUsage || !strings.Contains(errout, "a JSON object") {
		t.Fatalf("update with bad JSON: exit %d\n%s%s", code, out, errout)
	}

	// the device watches; the application sets desired on the device's shadow until the delta
	// arrives (the watch subscribes after it starts)
	type result struct {
		code     int
		out, err string
	}
	watched := make(chan result, 1)
	go func() {
		c, o, e := run(t, as("dev1", "watch", "-C", "1", "--wait", "30s")...)
		watched <- result{c, o, e}
	}()
	var w result
	deadline := time.After(30 * time.Second)
wait:
	for {
		if c, o, e := run(t, as("app", "update", "--thing", "dev1", "--desired", `{"led":"on"}`)...); c != 0 {
			t.Fatalf("app update --desired: exit %d\n%s%s", c, o, e)
		}
		select {
		case w = <-watched:
			break wait
		case <-time.After(300 * time.Millisecond):
		case <-deadline:
			t.Fatal("no delta watched in 30 s")
		}
	}
	var delta struct {
		State   map[string]any `json:"state"`
		Version int64          `json:"version"`
	}
	if w.code != 0 || json.Unmarshal([]byte(strings.TrimSpace(w.out)), &delta) != nil || delta.State["led"] != "on" || delta.State["temp"] != nil {
		t.Fatalf("watch: exit %d\n%s%s", w.code, w.out, w.err)
	}

	// a stale version is refused with the fix
	code, out, errout = run(t, as("dev1", "update", "--reported", `{"led":"on"}`, "--version", "1")...)
	if code != cmdutil.ExitRefused || !strings.Contains(errout, "409") || !strings.Contains(errout, "fennec shadow get") {
		t.Fatalf("update at a stale version: exit %d\n%s%s", code, out, errout)
	}
	// the current one is taken, and get shows the merged state with no delta left
	code, out, errout = run(t, as("dev1", "get", "--json")...)
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || doc.State.Desired["led"] != "on" {
		t.Fatalf("get: exit %d\n%s%s", code, out, errout)
	}
	code, out, errout = run(t, as("dev1", "update", "--reported", `{"led":"on"}`, "--version", fmt.Sprint(doc.Version))...)
	if code != 0 || !strings.Contains(out, `"led": "on"`) {
		t.Fatalf("update at the current version: exit %d\n%s%s", code, out, errout)
	}

	// a named shadow is separate from the classic one
	if code, out, errout = run(t, as("dev1", "get", "--name", "config")...); code != cmdutil.ExitRefused || !strings.Contains(errout, "404") {
		t.Fatalf("get of a missing named shadow: exit %d\n%s%s", code, out, errout)
	}
	if code, out, errout = run(t, as("dev1", "delete")...); code != 0 || !strings.Contains(out, "deleted $aws/things/dev1/shadow") {
		t.Fatalf("delete: exit %d\n%s%s", code, out, errout)
	}
	if code, out, errout = run(t, as("dev1", "get")...); code != cmdutil.ExitRefused || !strings.Contains(errout, "404") {
		t.Fatalf("get after delete: exit %d\n%s%s", code, out, errout)
	}
}
