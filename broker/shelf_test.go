package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
)

// TestBacklogBeyondPacketIdentifiers: an offline MQTT 5 session holds more QoS 1 messages than
// there are packet identifiers (65,535), and its reconnect gets every one, once, in order, with
// nothing dropped. mochi gives each message it stores an identifier, so the broker used to
// drop everything past 65,535 ("packet ids exhausted"); the session's own list needs none.
func TestBacklogBeyondPacketIdentifiers(t *testing.T) {
	if testing.Short() {
		t.Skip("publishes 70,000 messages")
	}
	const n = 70000
	b, err := broker.New(broker.Options{MaxStoredMessages: n, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	url := "mqtt://" + b.Addr()
	const id, topic = "big-backlog", "backlog/big"
	var mu sync.Mutex
	var got []int
	done := make(chan struct{})
	cfg := fennec.Config{Server: url, ClientID: id, SessionExpiry: time.Hour, DisableReconnect: true,
		DefaultHandler: func(m *fennec.Message) {
			i, _ := strconv.Atoi(string(m.Payload))
			mu.Lock()
			got = append(got, i)
			if len(got) == n {
				close(done)
			}
			mu.Unlock()
		}}
	sub, err := fennec.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Subscribe(ctx, func(*fennec.Message) {}, packet.Subscription{Filter: topic, QoS: 1}); err != nil {
		t.Fatal(err)
	}
	sub.Disconnect(ctx)
	pub, err := fennec.Connect(ctx, fennec.Config{Server: url, CleanStart: true, DisableReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	toks := make([]*fennec.Token, n)
	for i := range toks {
		toks[i] = pub.PublishAsync(ctx, &fennec.Message{Topic: topic, QoS: 1, Payload: []byte(strconv.Itoa(i))})
	}
	for i, tok := range toks {
		if err := tok.Wait(ctx); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	waitFor(t, fmt.Sprintf("%d messages stored", n), func() bool { return b.Stored(id) == n })
	if d := b.Dropped()[id]; d != 0 {
		t.Fatalf("%d messages dropped below the bound", d)
	}
	sub, err = fennec.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("%d of %d delivered", len(got), n)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, v := range got {
		if v != i {
			t.Fatalf("message %d is %d: lost, repeated or out of order", i, v)
		}
	}
	if d := b.Dropped()[id]; d != 0 {
		t.Fatalf("%d messages dropped", d)
	}
}

// TestShelfToV311: messages kept on an MQTT 5 session's own list (past the table size at which
// the broker shelves them, set low here) reach the client in order when it reconnects as an
// MQTT 3.1.1 client, which has no Receive Maximum: mochi re-sends them all from its table.
func TestShelfToV311(t *testing.T) {
	defer broker.SetShelveAfter(2)()
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const id, topic = "shelf-311", "shelf/311"
	got := make(chan string, 64)
	sub, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, ClientID: id, Version: packet.V5,
		SessionExpiry: time.Hour, ReceiveMaximum: 5, DisableReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Subscribe(ctx, func(*fennec.Message) {}, packet.Subscription{Filter: topic, QoS: 1}); err != nil {
		t.Fatal(err)
	}
	sub.Disconnect(ctx)
	offline(t, b, id)
	pub := fennecSession(t, b, id+"-pub", packet.V5, nil)
	msgs := numbered("s", 30)
	for _, m := range msgs {
		if err := pub.Publish(ctx, &fennec.Message{Topic: topic, QoS: 1, Payload: []byte(m)}); err != nil {
			t.Fatal(err)
		}
	}
	stored(t, b, id, len(msgs))
	back, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, ClientID: id, Version: packet.V311,
		DisableReconnect: true, DefaultHandler: func(m *fennec.Message) { got <- string(m.Payload) }})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	var recv []string
	for len(recv) < len(msgs) {
		select {
		case m := <-got:
			recv = append(recv, m)
		case <-ctx.Done():
			t.Fatalf("received %q", recv)
		}
	}
	sameList(t, "stored messages over MQTT 3.1.1", recv, msgs)
}
