package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
)

// TestPacedPublisherReceiveMaximum: a QoS 1 publisher that stays at most 20 messages ahead of
// an MQTT 5 QoS 1 subscriber with Receive Maximum 10, for 5,000 messages. mochi's
// Inflight.NextImmediate takes a read lock and calls GetAll, which takes it again; with
// Inflight.Set waiting for the write lock in between, the broker hung (10 of 10 tries, after 9
// to 1,177 messages). The broker now sends such a client's messages from its own queue and keeps
// mochi away from NextImmediate (flow.go). Under -race, with a deadline; the subscriber's trace
// checks that no more than 10 messages were ever unacknowledged [MQTT-3.3.4-9].
func TestPacedPublisherReceiveMaximum(t *testing.T) {
	for try := range 3 {
		t.Run(fmt.Sprint(try), func(t *testing.T) {
			b := brokertest.Start(t, brokertest.Options{Logger: slog.New(slog.DiscardHandler)})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var got atomic.Int64
			var mu sync.Mutex
			open, maxOpen := map[uint16]bool{}, 0
			trace := func(e fennec.TraceEvent) {
				mu.Lock()
				defer mu.Unlock()
				switch p := e.Packet.(type) {
				case *packet.Publish:
					if !e.Outbound && p.QoS > 0 {
						open[p.PacketID] = true
						maxOpen = max(maxOpen, len(open))
					}
				case *packet.Puback:
					if e.Outbound {
						delete(open, p.PacketID)
					}
				}
			}
			sc, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, ReceiveMaximum: 10, CleanStart: true, Trace: trace})
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			if _, err := sc.Subscribe(ctx, func(*fennec.Message) { got.Add(1) }, packet.Subscription{Filter: "paced/t", QoS: 1}); err != nil {
				t.Fatal(err)
			}
			pc, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, CleanStart: true})
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			const n = 5000
			for i := 0; i < n; i++ {
				for int64(i)-got.Load() > 20 {
					if ctx.Err() != nil {
						t.Fatalf("stalled: %d of %d received (the broker hung)", got.Load(), n)
					}
					time.Sleep(50 * time.Microsecond)
				}
				if err := pc.Publish(ctx, &fennec.Message{Topic: "paced/t", QoS: 1, Payload: []byte("m")}); err != nil {
					t.Fatalf("publish %d: %v (%d received)", i, err, got.Load())
				}
			}
			for got.Load() < n {
				if ctx.Err() != nil {
					t.Fatalf("stalled: %d of %d received (the broker hung)", got.Load(), n)
				}
				time.Sleep(time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			if maxOpen > 10 {
				t.Fatalf("%d messages unacknowledged at once, Receive Maximum 10", maxOpen)
			}
		})
	}
}
