package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
	"github.com/fennec-mqtt/fennec/packet"
)

// backlogBrokers returns the two brokers of a comparison: the embedded one (its session bound
// raised to 100,000) and a mosquitto that keeps every queued message (max_queued_messages 0).
func backlogBrokers(b *testing.B) map[string]string {
	eb, err := broker.New(broker.Options{MaxStoredMessages: 100000, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if err := eb.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { eb.Close() })
	m := mosquittotest.Start(b, mosquittotest.Options{Quiet: true, Config: []string{"max_queued_messages 0", "max_inflight_messages 20"}})
	return map[string]string{"fennec": "mqtt://" + eb.Addr(), "mosquitto": "mqtt://" + m.Addr}
}

// BenchmarkBacklog: 100,000 QoS 1 messages queued for an offline MQTT 5 persistent session are
// drained when it reconnects (Receive Maximum 256, Fennec's default), on the embedded broker and
// on mosquitto in the same run. msgs/s is the figure; the embedded broker must not be slower.
// Each iteration drains one backlog.
func BenchmarkBacklog(b *testing.B) {
	const n = 100000
	for _, name := range []string{"fennec", "mosquitto"} {
		b.Run("broker="+name, func(b *testing.B) {
			url := backlogBrokers(b)[name]
			ctx := context.Background()
			var total time.Duration
			for i := 0; i < b.N; i++ {
				id := fmt.Sprintf("backlog-%d", i)
				var got atomic.Int64
				cfg := fennec.Config{Server: url, ClientID: id, SessionExpiry: time.Hour,
					DefaultHandler: func(*fennec.Message) { got.Add(1) }}
				sc, err := fennec.Connect(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := sc.Subscribe(ctx, func(*fennec.Message) { got.Add(1) }, packet.Subscription{Filter: id, QoS: 1}); err != nil {
					b.Fatal(err)
				}
				sc.Disconnect(ctx)
				pc, err := fennec.Connect(ctx, fennec.Config{Server: url, CleanStart: true})
				if err != nil {
					b.Fatal(err)
				}
				toks := make([]*fennec.Token, n)
				for j := range toks {
					toks[j] = pc.PublishAsync(ctx, &fennec.Message{Topic: id, QoS: 1, Payload: []byte("backlog")})
				}
				for _, t := range toks {
					if err := t.Wait(ctx); err != nil {
						b.Fatal(err)
					}
				}
				pc.Disconnect(ctx)
				time.Sleep(100 * time.Millisecond) // the broker has stored them all
				if f := os.Getenv("FENNEC_DRAIN_PROFILE"); f != "" && name == "fennec" && i == 0 {
					// the drain alone, for pprof: FENNEC_DRAIN_PROFILE=cpu.out
					pf, err := os.Create(f)
					if err != nil {
						b.Fatal(err)
					}
					pprof.StartCPUProfile(pf)
					defer func() { pprof.StopCPUProfile(); pf.Close() }()
				}
				start := time.Now()
				sc, err = fennec.Connect(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				deadline := time.Now().Add(2 * time.Minute)
				for got.Load() < n {
					if time.Now().After(deadline) {
						b.Fatalf("%s: %d of %d drained in 2 minutes", name, got.Load(), n)
					}
					time.Sleep(time.Millisecond)
				}
				total += time.Since(start)
				if os.Getenv("FENNEC_DRAIN_PROFILE") != "" && name == "fennec" && i == 0 {
					pprof.StopCPUProfile()
				}
				sc.Close()
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "msgs/s")
		})
	}
}

// BenchmarkLiveReceiveMaximum10: an unpaced QoS 1 publisher to an MQTT 5 subscriber with
// Receive Maximum 10, on both brokers in one run (live traffic used to collapse to about 25
// messages a second on the embedded broker).
func BenchmarkLiveReceiveMaximum10(b *testing.B) {
	const n = 20000
	for _, name := range []string{"fennec", "mosquitto"} {
		b.Run("broker="+name, func(b *testing.B) {
			url := backlogBrokers(b)[name]
			ctx := context.Background()
			var total time.Duration
			for i := 0; i < b.N; i++ {
				var got atomic.Int64
				topic := fmt.Sprintf("live-%d", i)
				sc, err := fennec.Connect(ctx, fennec.Config{Server: url, ReceiveMaximum: 10, CleanStart: true})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := sc.Subscribe(ctx, func(*fennec.Message) { got.Add(1) }, packet.Subscription{Filter: topic, QoS: 1}); err != nil {
					b.Fatal(err)
				}
				pc, err := fennec.Connect(ctx, fennec.Config{Server: url, CleanStart: true})
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				for range n {
					pc.PublishAsync(ctx, &fennec.Message{Topic: topic, QoS: 1, Payload: []byte("live")})
				}
				deadline := time.Now().Add(2 * time.Minute)
				for got.Load() < n {
					if time.Now().After(deadline) {
						b.Fatalf("%s: %d of %d in 2 minutes", name, got.Load(), n)
					}
					time.Sleep(time.Millisecond)
				}
				total += time.Since(start)
				pc.Close()
				sc.Close()
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "msgs/s")
		})
	}
}
