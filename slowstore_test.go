package fennec_test

import (
	"context"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/session"
)

// slowStore is a durable store on a disk that stalls: Put of a message to topic "slow" waits
// until release is closed.
type slowStore struct {
	*session.MemoryStore
	entered chan struct{}
	release chan struct{}
}

func (s *slowStore) Put(r session.Record) error {
	if p, err := session.UnmarshalPublish(r.Data); err == nil && p.Topic == "slow" && !r.Released {
		close(s.entered)
		<-s.release
	}
	return s.MemoryStore.Put(r)
}

// TestSlowStoreStallsOnlyItsPublisher: while one publish waits for its durable write, other
// publishers, the reader and acknowledgements go on. The store write used to run under the
// client's lock, so one slow fsync stalled every publisher and the reader.
func TestSlowStoreStallsOnlyItsPublisher(t *testing.T) {
	leakCheck(t)
	fb := startFake(t, packet.V5)
	st := &slowStore{MemoryStore: session.NewMemoryStore(), entered: make(chan struct{}), release: make(chan struct{})}
	got := newCollector(1)
	cfg := fastReconnect(fb.url(), packet.V5)
	cfg.Store = st
	cfg.SessionExpiry = time.Hour
	cfg.DefaultHandler = got.handler
	c, fc := connectFake(t, fb, cfg, false)
	slow := make(chan error, 1)
	go func() { slow <- c.Publish(context.Background(), &fennec.Message{Topic: "slow", QoS: 1}) }()
	<-st.entered

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	fast := make(chan error, 2)
	go func() { fast <- c.Publish(ctx, &fennec.Message{Topic: "fast0", QoS: 0}) }()
	go func() { fast <- c.Publish(ctx, &fennec.Message{Topic: "fast1", QoS: 1}) }()
	for i := 0; i < 2; i++ {
		p := fc.readType(packet.PUBLISH).(*packet.Publish)
		if p.Topic == "slow" {
			t.Fatal("the slow message was sent before it was durable")
		}
		if p.QoS == 1 {
			fc.write(&packet.Puback{PacketID: p.PacketID})
		}
	}
	for i := 0; i < 2; i++ {
		if err := <-fast; err != nil {
			t.Fatalf("a publish behind the stalled store write: %v", err)
		}
	}
	// The reader goes on too: an inbound message is delivered and acknowledged.
	fc.write(&packet.Publish{Topic: "in", QoS: 1, PacketID: 9})
	if m := got.next(t); m.Topic != "in" {
		t.Fatalf("got %q", m.Topic)
	}
	fc.readType(packet.PUBACK)

	close(st.release)
	p := fc.readType(packet.PUBLISH).(*packet.Publish)
	if p.Topic != "slow" {
		t.Fatalf("got %q, want the slow message once durable", p.Topic)
	}
	fc.write(&packet.Puback{PacketID: p.PacketID})
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
}
