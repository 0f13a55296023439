package benchmarks

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// Client benchmarks: every library in Libraries() against a mosquitto started for the benchmark,
// over plain TCP and TLS 1.3 with client certificates. They are quick checks; the figures in
// docs/benchmarks.md come from `go run ./cmd/compare`, which runs the same measurements with
// fixed sizes, medians of several runs and ratios.
//
//	go test -run '^$' -bench 'Client' -benchtime 50000x   # throughput over 50,000 messages
//	go test -run '^$' -bench 'ClientIdle' -benchtime 1000x # 1,000 idle clients

func benchBroker(b *testing.B) (*Broker, *PKI) {
	b.Helper()
	p, err := NewPKI()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return startTestBroker(b, p), p
}

// startTestBroker starts mosquitto as the comparison does (see BrokerOptions), stopped when the
// test ends. A missing mosquitto fails the test unless FENNEC_SKIP_MOSQUITTO=1.
func startTestBroker(tb testing.TB, p *PKI) *Broker {
	tb.Helper()
	if _, err := RaiseFileLimit(); err != nil {
		tb.Logf("raising RLIMIT_NOFILE: %v", err)
	}
	br, err := StartBroker(BrokerOptions{NoDelay: true, PKI: p})
	if errors.Is(err, ErrNoMosquitto) && os.Getenv("FENNEC_SKIP_MOSQUITTO") == "1" {
		tb.Skip("mosquitto not installed (FENNEC_SKIP_MOSQUITTO=1)")
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { br.Close() })
	return br
}

// forEachClient runs fn for every library over TCP and TLS, with one broker per benchmark.
func forEachClient(b *testing.B, fn func(b *testing.B, lib Library, ep Endpoint)) {
	br, p := benchBroker(b)
	for _, transport := range []string{"tcp", "tls"} {
		ep := br.Endpoint(transport == "tls", p)
		for _, lib := range Libraries() {
			b.Run(transport+"/"+lib.Short(), func(b *testing.B) { fn(b, lib, ep) })
		}
	}
}

func benchThroughput(b *testing.B, qos byte) {
	forEachClient(b, func(b *testing.B, lib Library, ep Endpoint) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		r, err := MeasureThroughput(ctx, lib, ep, qos, b.N)
		if err != nil {
			b.Fatal(err)
		}
		if r.Lost() > 0 {
			b.Logf("%d of %d messages lost", r.Lost(), r.Sent)
		}
		// ns/op is the publish → last arrival time per message, without the connects.
		b.ReportMetric(float64(r.Elapsed.Nanoseconds())/float64(b.N), "ns/op")
		b.ReportMetric(r.Rate(), "msg/s")
		b.ReportMetric(float64(r.Lost()), "lost")
	})
}

// BenchmarkClientQoS0 publishes b.N QoS 0 messages of 64 bytes from one client to another through
// mosquitto and reports what arrives per second.
func BenchmarkClientQoS0(b *testing.B) { benchThroughput(b, 0) }

// BenchmarkClientQoS1 is BenchmarkClientQoS0 at QoS 1, every PUBACK awaited.
func BenchmarkClientQoS1(b *testing.B) { benchThroughput(b, 1) }

// BenchmarkClientRoundTrip publishes b.N QoS 1 messages one at a time and reports the publish →
// arrival latency.
func BenchmarkClientRoundTrip(b *testing.B) {
	forEachClient(b, func(b *testing.B, lib Library, ep Endpoint) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		r, err := MeasureLatency(ctx, lib, ep, b.N, 10)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(r.Quantile(0.5).Nanoseconds())/1e3, "p50-µs")
		b.ReportMetric(float64(r.Quantile(0.99).Nanoseconds())/1e3, "p99-µs")
	})
}

// BenchmarkClientIdle connects b.N clients and reports the heap, stack and goroutines each holds
// while idle. Run it with -benchtime 1000x for the figure the comparison uses.
func BenchmarkClientIdle(b *testing.B) {
	forEachClient(b, func(b *testing.B, lib Library, ep Endpoint) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		r, err := MeasureIdle(ctx, lib, ep, b.N, 16, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.HeapPerConn, "heap-B/conn")
		b.ReportMetric(r.StackPerConn, "stack-B/conn")
		b.ReportMetric(r.GoroutinesPerConn, "goroutines/conn")
	})
}
