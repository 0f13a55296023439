package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
)

// TestWillZeroLengthPayload: a will with a zero-length payload is allowed and published empty,
// on both versions. mochi refused such a CONNECT ("will flag no payload", 0x82 — a code MQTT
// 3.1.1 does not have).
func TestWillZeroLengthPayload(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			got := make(chan *fennec.Message, 1)
			topic := "will/" + v.String()
			sub, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, CleanStart: true})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if _, err := sub.Subscribe(ctx, func(m *fennec.Message) { got <- m }, packet.Subscription{Filter: topic, QoS: 1}); err != nil {
				t.Fatal(err)
			}
			dev, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, Version: v, CleanStart: true,
				Will: &fennec.Message{Topic: topic, QoS: 1}})
			if err != nil {
				t.Fatalf("CONNECT with a zero-length will payload: %v", err)
			}
			dev.Close() // no DISCONNECT: the broker publishes the will
			select {
			case m := <-got:
				if len(m.Payload) != 0 {
					t.Fatalf("will payload %q, want empty", m.Payload)
				}
			case <-ctx.Done():
				t.Fatal("no will")
			}
		})
	}
}

// TestWillProperties: an MQTT 5 will keeps the properties its client set — Payload Format
// Indicator, Content Type, Response Topic, Correlation Data, user properties and its own
// Message Expiry Interval, counted down — live and as the retained message a later subscriber
// gets; a will without Message Expiry Interval arrives without one [MQTT-3.3.2-6]. mochi kept
// only the user properties and stamped its 24-hour expiry on every will.
func TestWillProperties(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var props packet.Properties
	props.SetPayloadFormat(1)
	props.SetContentType("application/json")
	props.SetResponseTopic("status/replies")
	props.SetCorrelationData([]byte{1, 2, 3})
	props.SetMessageExpiryInterval(600)
	props.AddUserProperty("site", "lab")
	check := func(what string, m *fennec.Message, expiry bool) {
		t.Helper()
		p := m.Props
		if p.PayloadFormat != 1 || p.ContentType != "application/json" || p.ResponseTopic != "status/replies" ||
			string(p.CorrelationData) != "\x01\x02\x03" || len(p.UserProperties) != 1 || p.UserProperties[0].Key != "site" || p.UserProperties[0].Value != "lab" {
			t.Fatalf("%s: properties %+v", what, p)
		}
		if expiry && (p.MessageExpiryInterval == 0 || p.MessageExpiryInterval > 600) {
			t.Fatalf("%s: Message Expiry Interval %d, want the will's 600 counted down", what, p.MessageExpiryInterval)
		}
		if !expiry && p.MessageExpiryInterval != 0 {
			t.Fatalf("%s: Message Expiry Interval %d on a will that had none", what, p.MessageExpiryInterval)
		}
	}
	for _, expiry := range []bool{true, false} {
		p := props
		if !expiry {
			p = packet.Properties{}
			p.SetPayloadFormat(1)
			p.SetContentType("application/json")
			p.SetResponseTopic("status/replies")
			p.SetCorrelationData([]byte{1, 2, 3})
			p.UserProperties = props.UserProperties
		}
		topic := "will/props/" + map[bool]string{true: "expiry", false: "none"}[expiry]
		got := make(chan *fennec.Message, 1)
		sub, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, Version: packet.V5, CleanStart: true})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		if _, err := sub.Subscribe(ctx, func(m *fennec.Message) { got <- m }, packet.Subscription{Filter: topic, QoS: 1}); err != nil {
			t.Fatal(err)
		}
		dev, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, Version: packet.V5, CleanStart: true,
			Will: &fennec.Message{Topic: topic, QoS: 1, Retain: true, Payload: []byte(`{"online":false}`), Props: p}})
		if err != nil {
			t.Fatal(err)
		}
		dev.Close() // no DISCONNECT: the broker publishes the will
		select {
		case m := <-got:
			check("live will", m, expiry)
		case <-ctx.Done():
			t.Fatal("no will")
		}
		late := make(chan *fennec.Message, 1)
		sub2, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, Version: packet.V5, CleanStart: true})
		if err != nil {
			t.Fatal(err)
		}
		defer sub2.Close()
		if _, err := sub2.Subscribe(ctx, func(m *fennec.Message) { late <- m }, packet.Subscription{Filter: topic, QoS: 1}); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-late:
			if !m.Retain {
				t.Fatal("the retained will arrived without RETAIN")
			}
			check("retained will", m, expiry)
		case <-ctx.Done():
			t.Fatal("no retained will")
		}
	}
}

// TestWillWithoutProperties: a will with no properties, of either version, reaches an MQTT 5
// subscriber without a Message Expiry Interval; mochi stamped its 24 hours on it.
func TestWillWithoutProperties(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			topic := "will/plain/" + v.String()
			got := make(chan *fennec.Message, 1)
			sub, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, Version: packet.V5, CleanStart: true})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if _, err := sub.Subscribe(ctx, func(m *fennec.Message) { got <- m }, packet.Subscription{Filter: topic, QoS: 1}); err != nil {
				t.Fatal(err)
			}
			dev, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, Version: v, CleanStart: true,
				Will: &fennec.Message{Topic: topic, QoS: 1, Payload: []byte("gone")}})
			if err != nil {
				t.Fatal(err)
			}
			dev.Close() // no DISCONNECT: the broker publishes the will
			select {
			case m := <-got:
				if string(m.Payload) != "gone" || m.Props.MessageExpiryInterval != 0 || len(m.Props.UserProperties) != 0 {
					t.Fatalf("will %q with Message Expiry Interval %d, user properties %v", m.Payload, m.Props.MessageExpiryInterval, m.Props.UserProperties)
				}
			case <-ctx.Done():
				t.Fatal("no will")
			}
		})
	}
}
