package benchmarks

import (
	"context"
	"testing"
	"time"
)

// TestClientsDeliverEveryMessage checks the harness and every client in the comparison: a QoS 1
// burst through mosquitto arrives complete, without duplicates, over TCP and TLS. A benchmark
// figure from a client that loses messages would be meaningless.
func TestClientsDeliverEveryMessage(t *testing.T) {
	p, err := NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	br := startTestBroker(t, p)
	for _, transport := range []string{"tcp", "tls"} {
		ep := br.Endpoint(transport == "tls", p)
		for _, lib := range append(Libraries(), Ceiling(), Raw{Rate: 20000}, Raw{Window: 20}) {
			t.Run(transport+"/"+lib.Short(), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				const n = 2000
				r, err := MeasureThroughput(ctx, lib, ep, 1, n)
				if err != nil {
					t.Fatal(err)
				}
				if r.Received != n || r.Dups != 0 {
					t.Fatalf("received %d distinct messages of %d, %d duplicates", r.Received, n, r.Dups)
				}
				// a paced client keeps its pace: message i is not written before i/Rate (a
				// lower bound, which a slow machine cannot break)
				if raw, ok := lib.(Raw); ok && raw.Rate > 0 {
					if earliest := time.Duration(float64(n-1) / raw.Rate * float64(time.Second)); r.PublishDone < earliest {
						t.Fatalf("%d messages at %.0f/s published in %v, before %v", n, raw.Rate, r.PublishDone, earliest)
					}
				}
				l, err := MeasureLatency(ctx, lib, ep, 20, 2)
				if err != nil {
					t.Fatal(err)
				}
				if len(l.Samples) != 20 || l.Quantile(0) <= 0 || l.Quantile(0.5) > l.Quantile(0.99) {
					t.Fatalf("latency samples %v", l.Samples)
				}
			})
		}
	}
}

// A publisher of one library and a subscriber of another (compare -sub) deliver everything.
func TestMixedPair(t *testing.T) {
	p, err := NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	br := startTestBroker(t, p)
	libs := Libraries()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 2000
	for i, pub := range libs {
		sub := libs[(i+1)%len(libs)]
		r, err := MeasureThroughputWith(ctx, pub, sub, br.Endpoint(false, p), 1, n)
		if err != nil {
			t.Fatalf("%s → %s: %v", pub.Short(), sub.Short(), err)
		}
		if r.Received != n || r.Dups != 0 {
			t.Fatalf("%s → %s: received %d distinct of %d, %d duplicates", pub.Short(), sub.Short(), r.Received, n, r.Dups)
		}
	}
}

// A windowed raw client never has more QoS 1 publishes outstanding than its window, and
// still delivers everything.
func TestRawWindow(t *testing.T) {
	p, err := NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	br := startTestBroker(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Raw{Window: 20}.Connect(ctx, br.Endpoint(false, p), "w-"+randID())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.PublishBurst(ctx, "bench/window", 1, 3000, Payload); err != nil {
		t.Fatal(err)
	}
	rc := c.(*rawConn)
	if rc.maxOut > 20 || rc.maxOut < 1 || rc.acks.Load() != 3000 {
		t.Fatalf("at most %d outstanding (window 20), %d acknowledged of 3000", rc.maxOut, rc.acks.Load())
	}
}

func TestQuantile(t *testing.T) {
	var r LatencyResult
	for i := 1; i <= 100; i++ {
		r.Samples = append(r.Samples, time.Duration(i))
	}
	if got := r.Quantile(0.5); got != 51 {
		t.Errorf("p50 = %v, want 51", got)
	}
	if got := r.Quantile(0.99); got != 100 {
		t.Errorf("p99 = %v, want 100", got)
	}
	if got := (LatencyResult{}).Quantile(0.5); got != 0 {
		t.Errorf("empty p50 = %v", got)
	}
}

func TestPayloadSequence(t *testing.T) {
	for _, i := range []int{0, 1, 49999, 1 << 40} {
		p := Payload(i)
		if len(p) != PayloadSize || seqOf(p) != i {
			t.Fatalf("Payload(%d): %d bytes, sequence %d", i, len(p), seqOf(p))
		}
	}
}

// The floor connection connects over TCP and TLS, holds one goroutine per connection, refuses
// to publish, and closes.
func TestFloor(t *testing.T) {
	p, err := NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	br := startTestBroker(t, p)
	for _, useTLS := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		r, err := MeasureIdle(ctx, Floor{}, br.Endpoint(useTLS, p), 20, 4, nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		// (the heap figures of 20 connections are below the heap's granularity: not checked)
		if r.GoroutinesPerConn < 0.5 || r.GoroutinesPerConn > 1.5 {
			t.Fatalf("TLS %v: %+v", useTLS, r)
		}
	}
	c, err := Floor{}.Connect(context.Background(), br.Endpoint(false, p), "f-"+randID())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(context.Background(), "x", 0, nil); err == nil {
		t.Fatal("the floor published")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}
