package fennec_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// Messages queued while the client is offline: one whose Message Expiry Interval runs out in
// the queue is not sent and fails with ErrMessageExpired; one that is still alive goes out with
// the time it waited taken off its interval; one without an interval is untouched.
func TestQueuedMessageExpiry(t *testing.T) {
	fb := startFake(t, packet.V5)
	cfg := fastReconnect(fb.url(), packet.V5)
	cfg.ConnectRetry = true
	c, err := fennec.Connect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// the first attempt is not answered yet: publish into the queue
	fc := fb.next(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := func(topic string, expiry uint32) *fennec.Message {
		m := &fennec.Message{Topic: topic, QoS: 1, Payload: []byte(topic)}
		if expiry > 0 {
			m.Props.SetMessageExpiryInterval(expiry)
		}
		return m
	}
	short := c.PublishAsync(ctx, msg("short", 1))
	long := c.PublishAsync(ctx, msg("long", 30))
	plain := c.PublishAsync(ctx, msg("plain", 0))
	time.Sleep(2100 * time.Millisecond)
	fc.accept(false)
	seen := map[string]*packet.Publish{}
	for len(seen) < 2 {
		p, ok := fc.read().(*packet.Publish)
		if !ok {
			continue
		}
		seen[p.Topic] = p
		fc.write(&packet.Puback{PacketID: p.PacketID})
	}
	if err := short.Wait(ctx); !errors.Is(err, fennec.ErrMessageExpired) {
		t.Fatalf("short-lived message: %v, want ErrMessageExpired", err)
	}
	if err := long.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := plain.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if seen["short"] != nil {
		t.Fatal("the expired message was sent")
	}
	if l := seen["long"]; l == nil || l.Props.MessageExpiryInterval > 28 || l.Props.MessageExpiryInterval < 26 {
		t.Fatalf("long-lived message sent with expiry %+v, want 30 less the 2 s it waited", l)
	}
	if p := seen["plain"]; p == nil || p.Props.Has(packet.PropMessageExpiry) {
		t.Fatalf("message without expiry: %+v", p)
	}
}
