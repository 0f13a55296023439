package fennec_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
)

// Inbound Topic Aliases against the embedded broker (mochi sets an alias on the first message
// of a topic and sends the alias alone afterwards): the client announces its maximum and every
// message reaches the handler with its topic.
func TestTopicAliasesFromBroker(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var mu sync.Mutex
	aliasOnly := 0
	got := make(chan string, 100)
	sub, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, TopicAliasMaximum: 4,
		Trace: func(e fennec.TraceEvent) {
			if p, ok := e.Packet.(*packet.Publish); ok && !e.Outbound && p.Topic == "" && p.Props.Has(packet.PropTopicAlias) {
				mu.Lock()
				aliasOnly++
				mu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := sub.Subscribe(ctx, func(m *fennec.Message) { got <- m.Topic }, packet.Subscription{Filter: "alias/#", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	pub, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	topics := []string{"alias/a", "alias/b", "alias/a", "alias/a", "alias/b", "alias/c"}
	for _, tp := range topics {
		if err := pub.Publish(ctx, &fennec.Message{Topic: tp, QoS: 1, Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range topics {
		select {
		case tp := <-got:
			if tp != want {
				t.Fatalf("message %d on %q, want %q", i, tp, want)
			}
		case <-ctx.Done():
			t.Fatalf("message %d not received", i)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if aliasOnly < 3 {
		t.Fatalf("%d messages came by alias alone: the broker did not use the aliases", aliasOnly)
	}
}

// A broker that uses an alias above the client's maximum, or one it never set on this
// connection, gets DISCONNECT 0x94 Topic Alias invalid; aliases do not outlive a connection.
func TestTopicAliasInvalid(t *testing.T) {
	for name, pubs := range map[string][]*packet.Publish{
		"above the maximum": {pubAlias("t/a", 5)},
		"never set":         {pubAlias("", 2)},
	} {
		t.Run(name, func(t *testing.T) {
			fb := startFake(t, packet.V5)
			cfg := fastReconnect(fb.url(), packet.V5)
			cfg.TopicAliasMaximum = 4
			_, fc := connectFake(t, fb, cfg, false)
			fc.write(pubAliasAsPackets(pubs)...)
			var disc *packet.Disconnect
			for _, p := range fc.expectClosed() {
				if d, ok := p.(*packet.Disconnect); ok {
					disc = d
				}
			}
			if disc == nil || disc.ReasonCode != packet.TopicAliasInvalid {
				t.Fatalf("DISCONNECT %+v, want 0x94", disc)
			}
		})
	}
	// alias 0 cannot be encoded by the codec: written raw
	t.Run("zero", func(t *testing.T) {
		fb := startFake(t, packet.V5)
		cfg := fastReconnect(fb.url(), packet.V5)
		cfg.TopicAliasMaximum = 4
		_, fc := connectFake(t, fb, cfg, false)
		fc.writeRaw([]byte{0x30, 0x0a, 0x00, 0x03, 't', '/', 'a', 0x03, 0x23, 0x00, 0x00, 'x'})
		var disc *packet.Disconnect
		for _, p := range fc.expectClosed() {
			if d, ok := p.(*packet.Disconnect); ok {
				disc = d
			}
		}
		if disc == nil || disc.ReasonCode != packet.TopicAliasInvalid && disc.ReasonCode != packet.ProtocolError {
			t.Fatalf("DISCONNECT %+v, want 0x94 or 0x82", disc)
		}
	})
	// set on one connection, used on the next: invalid there
	fb := startFake(t, packet.V5)
	cfg := fastReconnect(fb.url(), packet.V5)
	cfg.TopicAliasMaximum = 4
	got := make(chan string, 4)
	cfg.DefaultHandler = func(m *fennec.Message) { got <- m.Topic }
	_, fc := connectFake(t, fb, cfg, false)
	fc.write(pubAlias("t/a", 1), pubAlias("", 1))
	for _, want := range []string{"t/a", "t/a"} {
		select {
		case tp := <-got:
			if tp != want {
				t.Fatalf("topic %q", tp)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("message not delivered")
		}
	}
	fc.nc.Close()
	fc2 := fb.next(t)
	fc2.accept(true)
	fc2.write(pubAlias("", 1))
	var disc *packet.Disconnect
	for _, p := range fc2.expectClosed() {
		if d, ok := p.(*packet.Disconnect); ok {
			disc = d
		}
	}
	if disc == nil || disc.ReasonCode != packet.TopicAliasInvalid {
		t.Fatalf("an alias of the previous connection: DISCONNECT %+v, want 0x94", disc)
	}
}

func pubAlias(topic string, alias uint16) *packet.Publish {
	p := &packet.Publish{Topic: topic, QoS: 0, Payload: []byte("x")}
	p.Props.TopicAlias = alias
	p.Props.Set(packet.PropTopicAlias)
	return p
}

func pubAliasAsPackets(ps []*packet.Publish) []packet.Packet {
	out := make([]packet.Packet, len(ps))
	for i, p := range ps {
		out[i] = p
	}
	return out
}

// Outbound Topic Aliases against the embedded broker: with two aliases and three topics used in
// turn, the client sends the alias alone for a topic it bound, rebinds the least recently used
// alias to a new topic, and the subscriber gets every message on its topic.
func TestTopicAliasesToBroker(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := make(chan string, 100)
	if _, err := sub.Subscribe(ctx, func(m *fennec.Message) { got <- m.Topic + "=" + string(m.Payload) }, packet.Subscription{Filter: "out/#", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wire []string
	pub, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, TopicAliases: 2,
		Trace: func(e fennec.TraceEvent) {
			if p, ok := e.Packet.(*packet.Publish); ok && e.Outbound {
				mu.Lock()
				wire = append(wire, fmt.Sprintf("%s#%d", p.Topic, p.Props.TopicAlias))
				mu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	topics := []string{"out/a", "out/a", "out/b", "out/a", "out/c", "out/a", "out/b"}
	for i, tp := range topics {
		if err := pub.Publish(ctx, &fennec.Message{Topic: tp, QoS: 1, Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	for i, tp := range topics {
		select {
		case g := <-got:
			if want := fmt.Sprintf("%s=%d", tp, i); g != want {
				t.Fatalf("received %q, want %q", g, want)
			}
		case <-ctx.Done():
			t.Fatalf("message %d not received", i)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// a binds 1; a by alias; b binds 2; a by alias; c takes the least recently used alias,
	// b's 2; a by alias; b again takes the least recently used, now c's 2.
	want := []string{"out/a#1", "#1", "out/b#2", "#1", "out/c#2", "#1", "out/b#2"}
	if fmt.Sprint(wire) != fmt.Sprint(want) {
		t.Fatalf("on the wire %q, want %q", wire, want)
	}
}
