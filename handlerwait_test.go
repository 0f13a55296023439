package fennec_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
)

// TestHandlerFloodWaitsForTokens: a handler that publishes with PublishAsync and waits for the
// token (Done or Wait) while a flood fills the dispatch queue keeps going through mosquitto. The
// reading goroutine used to block on the full queue, so the PUBACK the handler waited for was
// never read: 5,000 messages stalled after 1-210 handled, in every run.
func TestHandlerFloodWaitsForTokens(t *testing.T) {
	b := startMosquitto(t, "max_queued_messages 0")
	for _, v := range versions {
		for _, useWait := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/wait=%v", vname(v), useWait), func(t *testing.T) {
				leakCheck(t)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				c := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, Version: v, CleanStart: true, ClientID: fmt.Sprintf("flood-%v-%v", v, useWait)})
				base := "flood/" + c.ClientID()
				const n = 5000
				var handled atomic.Int64
				allDone := make(chan struct{})
				if _, err := c.Subscribe(ctx, func(m *fennec.Message) {
					tok := c.PublishAsync(context.Background(), &fennec.Message{Topic: base + "/out", QoS: 1, Payload: m.Payload})
					var err error
					if useWait {
						err = tok.Wait(ctx)
					} else {
						select {
						case <-tok.Done():
							err = tok.Err()
						case <-ctx.Done():
							err = ctx.Err()
						}
					}
					if err != nil {
						t.Errorf("handler's publish: %v", err)
					}
					if handled.Add(1) == n {
						close(allDone)
					}
				}, sub(base+"/in", 0)); err != nil {
					t.Fatal(err)
				}
				pub := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, Version: v, CleanStart: true})
				for i := 0; i < n; i++ {
					pub.PublishAsync(context.Background(), &fennec.Message{Topic: base + "/in", QoS: 0, Payload: []byte{byte(i)}})
				}
				if err := pub.Publish(ctx, &fennec.Message{Topic: base + "/fence", QoS: 1}); err != nil {
					t.Fatal(err)
				}
				select {
				case <-allDone:
				case <-ctx.Done():
					t.Fatalf("stalled after %d of %d messages handled", handled.Load(), n)
				}
			})
		}
	}
}
