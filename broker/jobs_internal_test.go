package broker

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// Malformed and hostile Jobs requests get AWS's error codes on the rejected topic, with the
// client token when it could be read, and change nothing.
func TestJobsRejections(t *testing.T) {
	j := newJobs(&Broker{log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	j.now = func() time.Time { return time.Unix(1700000000, 0) }
	j.doc["fw"] = json.RawMessage(`{"a":1}`)
	j.ex["dev1"] = map[string]*execution{"fw": {jobID: "fw", seq: 1, status: JobQueued, version: 1, number: 1}}
	for _, c := range []struct {
		name, jobID, op, payload, code string
		token                          bool
	}{
		{"not JSON", "", "get", `{"clientToken":`, "InvalidJson", false},
		{"token too long", "", "start-next", `{"clientToken":"` + strings.Repeat("t", 65) + `"}`, "InvalidRequest", false},
		{"too large", "fw", "update", `{"status":"IN_PROGRESS","statusDetails":{"x":"` + strings.Repeat("x", JobMaxRequest) + `"}}`, "InvalidRequest", false},
		{"no status", "fw", "update", `{"clientToken":"k"}`, "InvalidRequest", true},
		{"status a device cannot set", "fw", "update", `{"clientToken":"k","status":"CANCELED"}`, "InvalidRequest", true},
		{"status details not strings", "fw", "update", `{"clientToken":"k","status":"FAILED","statusDetails":{"n":1}}`, "InvalidJson", false},
		{"no such job", "nope", "update", `{"clientToken":"k","status":"FAILED"}`, "ResourceNotFound", true},
		{"no such execution number", "fw", "get", `{"clientToken":"k","executionNumber":7}`, "ResourceNotFound", true},
		{"stale version", "fw", "update", `{"clientToken":"k","status":"FAILED","expectedVersion":9}`, "VersionMismatch", true},
	} {
		topic := "$aws/things/dev1/jobs/" + c.op
		if c.jobID != "" {
			topic = "$aws/things/dev1/jobs/" + c.jobID + "/" + c.op
		}
		outs := j.serve("dev1", c.jobID, c.op, topic, []byte(c.payload))
		if len(outs) != 1 || outs[0].topic != topic+"/rejected" {
			t.Fatalf("%s: answered %+v", c.name, outs)
		}
		var e struct {
			Code, Message, ClientToken string
		}
		if err := json.Unmarshal(outs[0].payload, &e); err != nil || e.Code != c.code || e.Message == "" || (e.ClientToken == "k") != c.token {
			t.Errorf("%s: %s", c.name, outs[0].payload)
		}
	}
	if e := j.ex["dev1"]["fw"]; e.status != JobQueued || e.version != 1 || e.details != nil {
		t.Fatalf("a rejected request changed the execution: %+v", e)
	}
}
