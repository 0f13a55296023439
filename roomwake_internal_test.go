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

// The reading goroutine, held back by a full handler queue (a slow handler, a fast broker), is
// woken once an eighth of the queue is free, not after every message a handler finishes: it
// used to wake, queue one message and wait again, once per message.
func TestFullHandlerQueueWakesPerBatch(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = dispatchLimit + 1000
	release := make(chan struct{})
	var got []string
	done := make(chan struct{})
	sub, err := Connect(ctx, Config{Server: "mqtt://" + b.TCPAddr, CleanStart: true, DisableReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := sub.Subscribe(ctx, func(m *Message) {
		<-release
		time.Sleep(20 * time.Microsecond) // slower than the reader: the queue stays full
		got = append(got, string(m.Payload))
		if len(got) == n {
			close(done)
		}
	}, packet.Subscription{Filter: "slow/t", QoS: 0}); err != nil {
		t.Fatal(err)
	}
	pub, err := Connect(ctx, Config{Server: "mqtt://" + b.TCPAddr, CleanStart: true, DisableReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	before := dispatchWaits.Load()
	for i := range n {
		if err := pub.Publish(ctx, &Message{Topic: "slow/t", Payload: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	// The queue fills (the handler is held) and the reader waits on it.
	for dispatchWaits.Load() == before {
		select {
		case <-ctx.Done():
			t.Fatal("the handler queue never filled")
		case <-time.After(time.Millisecond):
		}
	}
	close(release)
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("%d of %d handled", len(got), n)
	}
	for i, m := range got {
		if m != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, m)
		}
	}
	waits := dispatchWaits.Load() - before
	// 1,000 messages past the bound, each wait ended by room for dispatchLimit/8 = 128.
	if limit := int64(1000/(dispatchLimit/8) + 10); waits > limit {
		t.Fatalf("the reader waited %d times on the full handler queue for %d messages past its bound (limit %d): woken per message", waits, 1000, limit)
	}
	t.Logf("%d waits", waits)
}
