package broker_test

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
)

// A QoS 1 publisher sends 5000 numbered messages while a persistent-session subscriber (3.1.1)
// reconnects every few milliseconds, its old connection often still closing when the new one
// takes the session over: every message must arrive (see docs/broker.md on the takeover
// window). Before routings that outlive a takeover were handed on, 0 to 3 of the 5000 were
// lost per run. FENNEC_STRESS=N repeats it N times.
func TestStressReconnectingSubscriber(t *testing.T) {
	rounds, _ := strconv.Atoi(os.Getenv("FENNEC_STRESS"))
	for i := range max(rounds, 1) {
		if lost := reconnectingSubscriber(t); lost > 0 {
			t.Fatalf("run %d: %d acknowledged messages never arrived", i+1, lost)
		}
	}
}

func reconnectingSubscriber(t *testing.T) int {
	b := brokertest.Start(t, brokertest.Options{Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	seen := map[int]int{}
	received := 0
	h := func(m *fennec.Message) {
		n, _ := strconv.Atoi(string(m.Payload))
		mu.Lock()
		seen[n]++
		received++
		mu.Unlock()
	}
	cfg := fennec.Config{Server: "mqtt://" + b.TCPAddr, ClientID: "stress", Version: packet.V311, DisableReconnect: true, DefaultHandler: h}
	c, err := fennec.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, h, packet.Subscription{Filter: "stress", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	_ = c.Disconnect(ctx)
	const n = 5000
	done := make(chan error, 1)
	go func() {
		p, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, ClientID: "stress-pub", Version: packet.V311})
		if err != nil {
			done <- err
			return
		}
		defer p.Close()
		for i := 1; i <= n; i++ {
			if err := p.Publish(ctx, &fennec.Message{Topic: "stress", QoS: 1, Payload: []byte(strconv.Itoa(i))}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	rounds := 0
	for publishing := true; publishing; rounds++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			publishing = false
		default:
		}
		c, err := fennec.Connect(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Millisecond)
		_ = c.Disconnect(ctx)
	}
	c, err = fennec.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the session to drain", func() bool {
		cl, ok := b.Server().Clients.Get("stress")
		return ok && cl.State.Inflight.Len() == 0
	})
	_ = c.Disconnect(ctx)
	mu.Lock()
	defer mu.Unlock()
	missing := 0
	for i := 1; i <= n; i++ {
		if seen[i] == 0 {
			missing++
		}
	}
	t.Logf("%d reconnects: %d messages received (%d distinct), %d of %d never arrived", rounds, received, len(seen), missing, n)
	return missing
}
