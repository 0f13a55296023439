package fennec_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// TestWillRetainUnsubscribe against mosquitto: a will message is published when a client
// closes without DISCONNECT; a retained message reaches a later subscriber with Retain set;
// after Unsubscribe nothing more arrives; a refused subscription is a *ReasonError.
func TestWillRetainUnsubscribe(t *testing.T) {
	b := startMosquitto(t)
	for _, v := range versions {
		t.Run(vname(v), func(t *testing.T) {
			leakCheck(t)
			ctx := testCtx(t)
			base := "feat/" + vname(v)
			watcher := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, Version: v, CleanStart: true})
			wills := newCollector(1)
			if _, err := watcher.Subscribe(ctx, wills.handler, sub(base+"/will", 1)); err != nil {
				t.Fatal(err)
			}
			dying, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.Addr, Version: v,
				Will: &fennec.Message{Topic: base + "/will", QoS: 1, Payload: []byte("gone")}})
			if err != nil {
				t.Fatal(err)
			}
			dying.Close()
			if m := wills.next(t); string(m.Payload) != "gone" {
				t.Fatalf("will %q", m.Payload)
			}

			if err := watcher.Publish(ctx, &fennec.Message{Topic: base + "/retained", QoS: 1, Retain: true, Payload: []byte("last")}); err != nil {
				t.Fatal(err)
			}
			late := newCollector(4)
			if _, err := watcher.Subscribe(ctx, late.handler, sub(base+"/retained", 1)); err != nil {
				t.Fatal(err)
			}
			if m := late.next(t); !m.Retain || string(m.Payload) != "last" {
				t.Fatalf("retained: retain=%v %q", m.Retain, m.Payload)
			}
			if err := watcher.Unsubscribe(ctx, base+"/retained"); err != nil {
				t.Fatal(err)
			}
			if err := watcher.Publish(ctx, &fennec.Message{Topic: base + "/retained", QoS: 1, Payload: []byte("after")}); err != nil {
				t.Fatal(err)
			}
			// A round trip on another subscription proves the broker has processed the publish.
			if err := watcher.Publish(ctx, &fennec.Message{Topic: base + "/will", QoS: 1, Payload: []byte("marker")}); err != nil {
				t.Fatal(err)
			}
			wills.next(t)
			select {
			case m := <-late:
				t.Fatalf("message %q after Unsubscribe", m.Payload)
			case <-time.After(10 * time.Millisecond):
			}
			watcher.Publish(ctx, &fennec.Message{Topic: base + "/retained", Retain: true}) // clear
			if err := watcher.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSubscribeRefused: a SUBACK failure code becomes a *ReasonError and the filter's handler
// is not kept.
func TestSubscribeRefused(t *testing.T) {
	leakCheck(t)
	fb := startFake(t, packet.V5)
	c, fc := connectFake(t, fb, fastReconnect(fb.url(), packet.V5), false)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Subscribe(context.Background(), func(*fennec.Message) {}, sub("ok/#", 1), sub("secret/#", 1))
		errc <- err
	}()
	s := fc.readType(packet.SUBSCRIBE).(*packet.Subscribe)
	fc.write(&packet.Suback{PacketID: s.PacketID, ReasonCodes: []packet.ReasonCode{packet.GrantedQoS1, packet.NotAuthorized}})
	var re *fennec.ReasonError
	if err := <-errc; !errors.As(err, &re) || re.Code != packet.NotAuthorized || re.Packet != packet.SUBACK {
		t.Fatalf("err %v, want ReasonError SUBACK 0x87", err)
	}
}

// TestSharedSubscription: a "$share/group/filter" subscription receives messages published on
// topics its filter matches, routed to its handler (mosquitto, both versions).
func TestSharedSubscription(t *testing.T) {
	b := startMosquitto(t)
	for _, v := range versions {
		t.Run(vname(v), func(t *testing.T) {
			leakCheck(t)
			ctx := testCtx(t)
			c := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, Version: v, CleanStart: true})
			got := newCollector(1)
			if _, err := c.Subscribe(ctx, got.handler, sub("$share/workers/jobs/"+vname(v)+"/+", 1)); err != nil {
				t.Fatal(err)
			}
			if err := c.Publish(ctx, &fennec.Message{Topic: "jobs/" + vname(v) + "/7", QoS: 1, Payload: []byte("job")}); err != nil {
				t.Fatal(err)
			}
			if m := got.next(t); string(m.Payload) != "job" {
				t.Fatalf("got %q", m.Payload)
			}
			if err := c.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestUnknownPubrel: PUBREL for a packet ID we do not hold (after a restart, say) is answered
// with PUBCOMP 0x92 Packet Identifier not found, not treated as an error.
func TestUnknownPubrel(t *testing.T) {
	leakCheck(t)
	fb := startFake(t, packet.V5)
	lost := make(chan error, 1)
	cfg := fastReconnect(fb.url(), packet.V5)
	cfg.OnConnectionLost = func(_ *fennec.Client, err error) { lost <- err }
	_, fc := connectFake(t, fb, cfg, false)
	fc.write(&packet.Pubrel{PacketID: 99})
	comp := fc.readType(packet.PUBCOMP).(*packet.Pubcomp)
	if comp.PacketID != 99 || comp.ReasonCode != packet.PacketIdentifierNotFound {
		t.Fatalf("PUBCOMP id %d code %v", comp.PacketID, comp.ReasonCode)
	}
	select {
	case err := <-lost:
		t.Fatalf("connection lost: %v", err)
	default:
	}
}

// TestKeptMessagesIntact: messages a handler keeps stay as they arrived while later ones are
// received (the connection decodes into reused values; what a Message refers to must not be),
// for QoS 0 and 1, with MQTT 5 properties, against mosquitto.
func TestKeptMessagesIntact(t *testing.T) {
	b := startMosquitto(t, "max_queued_messages 0")
	for _, v := range versions {
		t.Run(vname(v), func(t *testing.T) {
			leakCheck(t)
			ctx := testCtx(t)
			c := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, Version: v, CleanStart: true})
			const n = 300
			got := newCollector(n)
			base := "kept/" + c.ClientID()
			var toks []*fennec.Token
			if _, err := c.Subscribe(ctx, got.handler, sub(base+"/#", 1)); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < n; i++ {
				m := &fennec.Message{Topic: fmt.Sprintf("%s/%d", base, i), QoS: packet.QoS(i % 2), Payload: []byte(fmt.Sprintf("payload %d", i))}
				if v == packet.V5 {
					m.Props.SetContentType(fmt.Sprintf("type/%d", i))
					m.Props.SetCorrelationData([]byte(fmt.Sprintf("corr %d", i)))
					m.Props.UserProperties = []packet.UserProperty{{Key: "i", Value: fmt.Sprint(i)}}
				}
				toks = append(toks, c.PublishAsync(context.Background(), m))
			}
			kept := make([]*fennec.Message, 0, n)
			for i := 0; i < n; i++ {
				kept = append(kept, got.next(t))
			}
			seen := map[int]bool{}
			for _, m := range kept {
				// Order across topics and QoS levels is not guaranteed [MQTT-4.6.0-6]: the topic
				// says which message this is.
				var i int
				if _, err := fmt.Sscanf(m.Topic[len(base):], "/%d", &i); err != nil || seen[i] {
					t.Fatalf("unexpected or duplicate topic %q", m.Topic)
				}
				seen[i] = true
				if m.Topic != fmt.Sprintf("%s/%d", base, i) || string(m.Payload) != fmt.Sprintf("payload %d", i) || m.QoS != packet.QoS(i%2) {
					t.Fatalf("message %d: %q %q QoS %d", i, m.Topic, m.Payload, m.QoS)
				}
				if v == packet.V5 && (m.Props.ContentType != fmt.Sprintf("type/%d", i) ||
					string(m.Props.CorrelationData) != fmt.Sprintf("corr %d", i) ||
					len(m.Props.UserProperties) != 1 || m.Props.UserProperties[0].Value != fmt.Sprint(i)) {
					t.Fatalf("message %d: properties %+v", i, m.Props)
				}
			}
			// mosquitto may route a message to its subscriber before it writes the
			// publisher's PUBACK: the last message can arrive before its acknowledgement.
			for i, tok := range toks {
				if err := tok.Wait(ctx); err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
			}
			if err := c.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
