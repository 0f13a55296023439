package fennec_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
)

// TestBlockedHandlerKeepsReading: a handler may run on the reading goroutine (when no other
// delivery is pending), so a handler that blocks on something unrelated to the client must not
// stop reading: while it blocks, a Publish from another goroutine still gets its PUBACK, and
// the messages that arrive meanwhile are delivered afterwards, in order.
func TestBlockedHandlerKeepsReading(t *testing.T) {
	b := startMosquitto(t, "max_queued_messages 0")
	for _, v := range versions {
		t.Run(vname(v), func(t *testing.T) {
			leakCheck(t)
			ctx := testCtx(t)
			c := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, Version: v, CleanStart: true})
			base := "blocked/" + c.ClientID()
			started, release := make(chan struct{}), make(chan struct{})
			got := newCollector(10)
			if _, err := c.Subscribe(ctx, func(m *fennec.Message) {
				if string(m.Payload) == "0" {
					close(started)
					<-release // not the client: only a hand-off of reading can help
				}
				got.handler(m)
			}, sub(base+"/in", 1)); err != nil {
				t.Fatal(err)
			}
			if err := c.Publish(ctx, &fennec.Message{Topic: base + "/in", QoS: 1, Payload: []byte("0")}); err != nil {
				t.Fatal(err)
			}
			<-started
			for i := 1; i <= 3; i++ {
				// Each waits for a PUBACK, which only a reading goroutine can receive.
				if err := c.Publish(ctx, &fennec.Message{Topic: base + "/in", QoS: 1, Payload: []byte(fmt.Sprint(i))}); err != nil {
					t.Fatalf("Publish while a handler blocks: %v", err)
				}
			}
			close(release)
			for i := 0; i <= 3; i++ {
				if m := got.next(t); string(m.Payload) != fmt.Sprint(i) {
					t.Fatalf("message %d: got %q", i, m.Payload)
				}
			}
			if err := c.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestHandlerWaitsForToken: a handler that publishes with PublishAsync and waits on the token
// (its Done channel or Wait) gets its outcome: waiting lets reading go on.
func TestHandlerWaitsForToken(t *testing.T) {
	b := startMosquitto(t)
	for _, v := range versions {
		t.Run(vname(v), func(t *testing.T) {
			leakCheck(t)
			ctx := testCtx(t)
			c := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, Version: v, CleanStart: true})
			base := "tokwait/" + c.ClientID()
			results := make(chan error, 20)
			if _, err := c.Subscribe(ctx, func(m *fennec.Message) {
				tok := c.PublishAsync(context.Background(), &fennec.Message{Topic: base + "/out", QoS: 1, Payload: m.Payload})
				if m.Payload[0]%2 == 0 {
					select {
					case <-tok.Done():
						results <- tok.Err()
					case <-time.After(10 * time.Second):
						results <- fmt.Errorf("token %q not done after 10 s", m.Payload)
					}
				} else {
					results <- tok.Wait(ctx)
				}
			}, sub(base+"/in", 0)); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 10; i++ {
				if err := c.Publish(ctx, &fennec.Message{Topic: base + "/in", Payload: []byte{byte(i)}}); err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; i < 10; i++ {
				if err := <-results; err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDisconnectFromHandler: a handler (or a connection callback) may end the client: Disconnect
// and Close called from it return at once instead of waiting for the very handler that calls
// them, no later handler runs, and no goroutine is left behind. Both versions, with the handler
// on the reading goroutine (a lone message) and on the handler goroutine (a burst).
func TestDisconnectFromHandler(t *testing.T) {
	b := startMosquitto(t)
	for _, v := range versions {
		for _, burst := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/burst=%v", vname(v), burst), func(t *testing.T) {
				leakCheck(t)
				ctx := testCtx(t)
				c := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, Version: v, CleanStart: true})
				base := "bye/" + c.ClientID()
				result := make(chan error, 10)
				if _, err := c.Subscribe(ctx, func(m *fennec.Message) {
					// ctx is the test's, 20 s: waiting for this handler would end in its deadline
					result <- c.Disconnect(ctx)
				}, sub(base, 1)); err != nil {
					t.Fatal(err)
				}
				n := 1
				if burst {
					n = 5
				}
				for i := 0; i < n; i++ {
					c.PublishAsync(context.Background(), &fennec.Message{Topic: base, QoS: 1, Payload: []byte(fmt.Sprint(i))})
				}
				if err := <-result; err != nil && !errors.Is(err, fennec.ErrUnacknowledged) {
					t.Fatalf("Disconnect from a handler: %v", err)
				}
				if c.IsConnected() {
					t.Fatal("still connected after Disconnect")
				}
				if err := c.Close(); !errors.Is(err, fennec.ErrClosed) {
					t.Fatalf("Close after Disconnect: %v, want ErrClosed", err)
				}
				select {
				case err := <-result:
					t.Fatalf("a second handler ran after Disconnect (%v)", err)
				default:
				}
			})
		}
	}
}
