package awsiot_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/awsiot"
	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/packet"
)

// The Jobs round trip against the emulation: pending list, start-next, describe, status
// updates with details and expected versions, notify-next as the next job changes, the
// rejections AWS names (ResourceNotFound, VersionMismatch, InvalidStateTransition), and the
// broker's view of the final status. MQTT 5 and 3.1.1.
func TestJobsEmulated(t *testing.T) {
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		t.Run(v.String(), func(t *testing.T) {
			b := startEmulator(t)
			if err := b.CreateJob(broker.Job{ID: "fw-1", Document: json.RawMessage(`{"operation":"update","version":"1.2"}`), Things: []string{"dev1"}}); err != nil {
				t.Fatal(err)
			}
			dev := connect(t, b, "dev1", v)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			jobs := awsiot.NewJobs(dev, "dev1")
			next := make(chan *awsiot.JobExecution, 10)
			if err := jobs.OnNext(ctx, func(e *awsiot.JobExecution) { next <- e }); err != nil {
				t.Fatal(err)
			}
			waitNext := func(want string) {
				t.Helper()
				select {
				case e := <-next:
					if (e == nil) != (want == "") || e != nil && e.JobID != want {
						t.Fatalf("notify-next %+v, want %q", e, want)
					}
				case <-ctx.Done():
					t.Fatalf("no notify-next (want %q)", want)
				}
			}

			p, err := jobs.Pending(ctx)
			if err != nil || len(p.Queued) != 1 || p.Queued[0].JobID != "fw-1" || len(p.InProgress) != 0 {
				t.Fatalf("pending: %v %+v", err, p)
			}
			// a second job queues behind the first: notify-next does not fire
			if err := b.CreateJob(broker.Job{ID: "cfg-2", Document: json.RawMessage(`{"operation":"config"}`), Things: []string{"dev1", "other"}}); err != nil {
				t.Fatal(err)
			}
			e, err := jobs.StartNext(ctx, map[string]string{"step": "download"})
			if err != nil || e == nil || e.JobID != "fw-1" || e.Status != awsiot.StatusInProgress || e.VersionNumber != 2 || e.StatusDetails["step"] != "download" {
				t.Fatalf("start-next: %v %+v", err, e)
			}
			var doc struct{ Version string }
			if json.Unmarshal(e.JobDocument, &doc) != nil || doc.Version != "1.2" {
				t.Fatalf("job document %s", e.JobDocument)
			}
			if d, err := jobs.Describe(ctx, "$next"); err != nil || d == nil || d.JobID != "fw-1" || len(d.JobDocument) == 0 {
				t.Fatalf("describe $next: %v %+v", err, d)
			}
			if _, err := jobs.Describe(ctx, "nope"); !errors.Is(err, awsiot.ErrJobNotFound) {
				t.Fatalf("describe of no job: %v", err)
			}
			if _, err := jobs.Update(ctx, "fw-1", awsiot.JobUpdate{Status: awsiot.StatusInProgress, ExpectedVersion: 1}); !errors.Is(err, awsiot.ErrJobVersionMismatch) {
				t.Fatalf("stale version: %v", err)
			}
			st, err := jobs.Update(ctx, "fw-1", awsiot.JobUpdate{Status: awsiot.StatusInProgress, Details: map[string]string{"progress": "50%"}, ExpectedVersion: 2})
			if err != nil || st.VersionNumber != 3 || st.StatusDetails["progress"] != "50%" {
				t.Fatalf("progress: %v %+v", err, st)
			}
			if p, err = jobs.Pending(ctx); err != nil || len(p.InProgress) != 1 || len(p.Queued) != 1 || p.Queued[0].JobID != "cfg-2" {
				t.Fatalf("pending: %v %+v", err, p)
			}
			if _, err := jobs.Update(ctx, "fw-1", awsiot.JobUpdate{Status: awsiot.StatusSucceeded}); err != nil {
				t.Fatal(err)
			}
			waitNext("cfg-2")
			if _, err := jobs.Update(ctx, "fw-1", awsiot.JobUpdate{Status: awsiot.StatusFailed}); !errors.Is(err, awsiot.ErrJobStateTransition) {
				t.Fatalf("update of a terminal execution: %v", err)
			}
			if _, err := jobs.Update(ctx, "cfg-2", awsiot.JobUpdate{Status: "CANCELED"}); err == nil {
				t.Fatal("a device set CANCELED")
			}
			if _, err := jobs.Update(ctx, "cfg-2", awsiot.JobUpdate{Status: awsiot.StatusFailed, Details: map[string]string{"reason": "no space"}}); err != nil {
				t.Fatal(err)
			}
			waitNext("")
			if st, d, ok := b.JobExecution("dev1", "cfg-2"); !ok || st != broker.JobFailed || d["reason"] != "no space" {
				t.Fatalf("broker's view: %v %q %v", ok, st, d)
			}
			if st, _, _ := b.JobExecution("other", "cfg-2"); st != broker.JobQueued {
				t.Fatalf("other thing's execution: %q", st)
			}
			if e, err := jobs.StartNext(ctx, nil); err != nil || e != nil {
				t.Fatalf("start-next with nothing pending: %v %+v", err, e)
			}
			if p, err = jobs.Pending(ctx); err != nil || len(p.InProgress)+len(p.Queued) != 0 {
				t.Fatalf("pending at the end: %v %+v", err, p)
			}
		})
	}
}

// A job the emulation would refuse is refused when created, not served.
func TestCreateJobRefuses(t *testing.T) {
	b := startEmulator(t)
	for _, j := range []broker.Job{
		{ID: "bad id", Document: json.RawMessage(`{}`), Things: []string{"dev1"}},
		{ID: "x", Document: json.RawMessage(`[1]`), Things: []string{"dev1"}},
		{ID: "x", Document: json.RawMessage(`{}`)},
	} {
		if err := b.CreateJob(j); err == nil {
			t.Errorf("CreateJob(%+v) took it", j)
		}
	}
	if err := b.CreateJob(broker.Job{ID: "x", Document: json.RawMessage(`{}`), Things: []string{"dev1"}}); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateJob(broker.Job{ID: "x", Document: json.RawMessage(`{}`), Things: []string{"dev1"}}); err == nil {
		t.Error("a job ID used twice")
	}
}
