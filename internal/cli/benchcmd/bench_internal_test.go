package benchcmd

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/bench"
	"github.com/vbauerster/mpb/v8"
)

// The bars a terminal shows: connections counted up and the phase with the rates.
func TestBenchBars(t *testing.T) {
	var buf bytes.Buffer
	cfg := bench.Config{Mode: bench.PubSub, Publishers: 3, Subscribers: 2, Duration: time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v := newBarView(ctx, &buf, &cfg, mpb.ForceAutoRefresh())
	v.update(bench.Progress{Phase: "connect", Connected: 2, Clients: 5})
	v.update(bench.Progress{Phase: "run", Connected: 5, Clients: 5, SendRate: 1234, RecvRate: 2468, Sent: 1234, Received: 2468,
		Elapsed: time.Second, MeasureEnd: time.Now().Add(time.Second)})
	time.Sleep(300 * time.Millisecond) // at least one refresh with the run sample
	v.finish()
	s := buf.String()
	for _, want := range []string{"connections", "5 / 5", "run", "out 1234/s", "in 2468/s", "errors 0"} {
		if !strings.Contains(s, want) {
			t.Fatalf("bars without %q:\n%s", want, s)
		}
	}
}
