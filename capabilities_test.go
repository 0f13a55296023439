package fennec_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// A broker whose CONNACK says it has no wildcard and no shared subscriptions gets neither:
// Subscribe fails locally with ErrNotSupported and sends nothing; a plain filter is subscribed.
func TestConnackSubscriptionCapabilities(t *testing.T) {
	fb := startFake(t, packet.V5)
	c, fc := connectFake(t, fb, fastReconnect(fb.url(), packet.V5), false, func(p *packet.Properties) {
		p.WildcardSubscriptionAvailable = 0
		p.Set(packet.PropWildcardSubscriptionAvailable)
		p.SharedSubscriptionAvailable = 0
		p.Set(packet.PropSharedSubscriptionAvailable)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, f := range []string{"a/#", "a/+/b", "$share/g/a/b"} {
		if _, err := c.Subscribe(ctx, func(*fennec.Message) {}, packet.Subscription{Filter: f, QoS: 1}); !errors.Is(err, fennec.ErrNotSupported) {
			t.Fatalf("Subscribe %q: %v, want ErrNotSupported", f, err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Subscribe(ctx, func(*fennec.Message) {}, packet.Subscription{Filter: "a/b", QoS: 1})
		done <- err
	}()
	s, ok := fc.read().(*packet.Subscribe) // the first packet after CONNACK: nothing was sent before
	if !ok || len(s.Subscriptions) != 1 || s.Subscriptions[0].Filter != "a/b" {
		t.Fatalf("first packet %+v, want the SUBSCRIBE of a/b", s)
	}
	fc.write(&packet.Suback{PacketID: s.PacketID, ReasonCodes: []packet.ReasonCode{1}})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A message that says its payload is UTF-8 (Payload Format Indicator 1) and is not is refused
// before it is sent.
func TestPayloadFormatIndicatorChecked(t *testing.T) {
	fb := startFake(t, packet.V5)
	c, _ := connectFake(t, fb, fastReconnect(fb.url(), packet.V5), false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m := &fennec.Message{Topic: "t", Payload: []byte{0xff, 0xfe}}
	m.Props.SetPayloadFormat(1)
	if err := c.Publish(ctx, m); err == nil {
		t.Fatal("a payload that is not UTF-8 was sent with Payload Format Indicator 1")
	}
	m.Props.SetPayloadFormat(0)
	if err := c.Publish(ctx, m); err != nil {
		t.Fatalf("the same bytes as binary: %v", err)
	}
}

// Server Keep Alive in CONNACK replaces the client's keep-alive [MQTT-3.2.2-21]: asked for 60 s,
// told 1 s, the client pings within about a second.
func TestServerKeepAliveHonoured(t *testing.T) {
	fb := startFake(t, packet.V5)
	cfg := fastReconnect(fb.url(), packet.V5)
	cfg.KeepAlive = 60 * time.Second
	_, fc := connectFake(t, fb, cfg, false, func(p *packet.Properties) { p.SetServerKeepAlive(1) })
	start := time.Now()
	p := fc.read()
	if _, ok := p.(*packet.Pingreq); !ok {
		t.Fatalf("first packet %v, want PINGREQ", p.Type())
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("PINGREQ after %s: the broker's 1 s keep-alive was not used", d)
	}
	fc.write(&packet.Pingresp{})
}

// TestConnackPublishCapabilities: what the broker's CONNACK refuses is refused before it is
// sent (Maximum QoS [MQTT-3.2.2-11], Retain Available [MQTT-3.2.2-14]), Subscription
// Identifiers Available 0 keeps identifiers out of SUBSCRIBE, and Topic Alias Maximum bounds
// the aliases the client sets; the rest passes. The client keeps these in a few bytes, not the
// decoded CONNACK: ConnectionState decodes a copy of it on each call.
func TestConnackPublishCapabilities(t *testing.T) {
	fb := startFake(t, packet.V5)
	cfg := fastReconnect(fb.url(), packet.V5)
	cfg.TopicAliases = 10
	c, fc := connectFake(t, fb, cfg, false, func(p *packet.Properties) {
		p.SetMaximumQoS(1)
		p.SetRetainAvailable(0)
		p.SetSubscriptionIdentifiersAvailable(0)
		p.SetTopicAliasMaximum(1)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Publish(ctx, &fennec.Message{Topic: "t", QoS: 2}); !errors.Is(err, fennec.ErrNotSupported) {
		t.Fatalf("QoS 2 with Maximum QoS 1: %v, want ErrNotSupported", err)
	}
	if err := c.Publish(ctx, &fennec.Message{Topic: "t", Retain: true}); !errors.Is(err, fennec.ErrNotSupported) {
		t.Fatalf("retained with Retain Available 0: %v, want ErrNotSupported", err)
	}
	for _, topic := range []string{"first/topic", "second/topic", "first/topic"} {
		if err := c.Publish(ctx, &fennec.Message{Topic: topic, Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	var aliases []uint16
	for range 3 {
		p, ok := fc.read().(*packet.Publish)
		if !ok {
			t.Fatalf("read %T, want the QoS 0 PUBLISH (the refused ones must not have been sent)", p)
		}
		if p.Props.Has(packet.PropTopicAlias) {
			aliases = append(aliases, p.Props.TopicAlias)
		}
	}
	for _, a := range aliases {
		if a != 1 {
			t.Fatalf("topic aliases %v with Topic Alias Maximum 1", aliases)
		}
	}
	if len(aliases) == 0 {
		t.Fatal("no topic alias used although the broker allows one")
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Subscribe(ctx, func(*fennec.Message) {}, packet.Subscription{Filter: "a/b", QoS: 1})
		done <- err
	}()
	s, ok := fc.read().(*packet.Subscribe)
	if !ok {
		t.Fatalf("read %T, want SUBSCRIBE", s)
	}
	if s.Props.Has(packet.PropSubscriptionIdentifier) || len(s.Props.SubscriptionIdentifiers) > 0 {
		t.Fatalf("SUBSCRIBE carries a Subscription Identifier (%+v) although the broker has none", s.Props)
	}
	fc.write(&packet.Suback{PacketID: s.PacketID, ReasonCodes: []packet.ReasonCode{1}})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_, a1 := c.ConnectionState()
	_, a2 := c.ConnectionState()
	if a1 == nil || a1 == a2 || a1.Props.MaximumQoS != 1 || !a1.Props.Has(packet.PropRetainAvailable) || a1.Props.TopicAliasMaximum != 1 {
		t.Fatalf("ConnectionState CONNACK %+v (second call %p, first %p)", a1, a2, a1)
	}
}
