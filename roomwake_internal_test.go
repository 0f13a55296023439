package fennec

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
)

// A publisher faster than the connection, blocked on a full queue, is woken once the queue has
// room for a batch (an eighth of its bound), not after every acknowledgement: it used to wake,
// take one message and wait again, once per PUBACK — a goroutine wake-up, a channel and a lock
// hand-over per message, on the path of every QoS 1 burst (about 17 % of the TCP QoS 1 rate in
// the comparison harness). Every message still goes, in order.
func TestFullQueueWakesPerBatch(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n, queue = 3000, 80
	got := make(chan string, n)
	sub, err := Connect(ctx, Config{Server: "mqtt://" + b.TCPAddr, CleanStart: true, DisableReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := sub.Subscribe(ctx, func(m *Message) { got <- string(m.Payload) }, packet.Subscription{Filter: "room/t", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	pub, err := Connect(ctx, Config{Server: "mqtt://" + b.TCPAddr, CleanStart: true, DisableReconnect: true,
		MaxInflight: 4, MaxOfflineQueue: queue})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	before := roomWaits.Load()
	toks := make([]*Token, n)
	for i := range toks {
		toks[i] = pub.PublishAsync(ctx, &Message{Topic: "room/t", QoS: 1, Payload: []byte(strconv.Itoa(i))})
	}
	waits := roomWaits.Load() - before
	for i, tok := range toks {
		if err := tok.Wait(ctx); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	for i := range n {
		select {
		case m := <-got:
			if m != strconv.Itoa(i) {
				t.Fatalf("message %d is %q", i, m)
			}
		case <-ctx.Done():
			t.Fatalf("%d of %d received", i, n)
		}
	}
	// Each wait ends with room for at least a batch of queue/8 = 10 messages.
	if limit := int64(n/(queue/8) + 10); waits > limit {
		t.Fatalf("the publisher waited %d times for %d messages (queue %d): woken per acknowledgement, not per batch (limit %d)", waits, n, queue, limit)
	}
	if waits == 0 {
		t.Fatal("the publisher never waited: the test does not fill the queue")
	}
	t.Logf("%d waits for %d messages", waits, n)
}
