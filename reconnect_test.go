package fennec_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// TestResendInOrderWithDup: QoS 1 and 2 messages unacknowledged when the connection drops are
// sent again on the next connection, in their original order, with DUP set and the same packet
// IDs; their Publish calls then succeed. [MQTT-4.4.0-1] [MQTT-3.3.1-1]
func TestResendInOrderWithDup(t *testing.T) {
	for _, v := range versions {
		t.Run(vname(v), func(t *testing.T) {
			leakCheck(t)
			fb := startFake(t, v)
			lost := make(chan error, 4)
			up := make(chan *packet.Connack, 4)
			cfg := fastReconnect(fb.url(), v)
			cfg.OnConnectionLost = func(_ *fennec.Client, err error) { lost <- err }
			cfg.OnConnectionUp = func(_ *fennec.Client, ack *packet.Connack) { up <- ack }
			c, fc := connectFake(t, fb, cfg, false)
			<-up
			var toks []*fennec.Token
			for i := 0; i < 6; i++ {
				toks = append(toks, c.PublishAsync(context.Background(), &fennec.Message{Topic: "t", QoS: packet.QoS(1 + i%2), Payload: []byte(fmt.Sprint(i))}))
			}
			var first []*packet.Publish
			for i := 0; i < 6; i++ {
				p := fc.readType(packet.PUBLISH).(*packet.Publish)
				if p.Dup {
					t.Fatalf("first send has DUP")
				}
				first = append(first, p)
			}
			// Acknowledge the first message only, then drop the connection.
			fc.write(&packet.Puback{PacketID: first[0].PacketID})
			if err := toks[0].Wait(testCtx(t)); err != nil {
				t.Fatalf("first message: %v", err)
			}
			fc.nc.Close()
			if err := <-lost; !errors.Is(err, fennec.ErrConnectionLost) {
				t.Fatalf("OnConnectionLost: %v, want ErrConnectionLost", err)
			}
			fc2 := fb.next(t)
			fc2.accept(true)
			<-up
			var resent []*packet.Publish
			for i := 1; i < 6; i++ {
				p := fc2.readType(packet.PUBLISH).(*packet.Publish)
				if !p.Dup || p.PacketID != first[i].PacketID || string(p.Payload) != fmt.Sprint(i) {
					t.Fatalf("resend %d: dup=%v id=%d payload=%q, want dup id=%d payload %d", i, p.Dup, p.PacketID, p.Payload, first[i].PacketID, i)
				}
				resent = append(resent, p)
			}
			for _, p := range resent {
				if p.QoS == 1 {
					fc2.write(&packet.Puback{PacketID: p.PacketID})
					continue
				}
				fc2.write(&packet.Pubrec{PacketID: p.PacketID})
				if rel := fc2.readType(packet.PUBREL).(*packet.Pubrel); rel.PacketID != p.PacketID {
					t.Fatalf("PUBREL for %d, want %d", rel.PacketID, p.PacketID)
				}
				fc2.write(&packet.Pubcomp{PacketID: p.PacketID})
			}
			for i, tok := range toks {
				if err := tok.Wait(testCtx(t)); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			go fc2.expectClosed()
			if err := c.Disconnect(ctx); err != nil {
				t.Fatalf("Disconnect: %v", err)
			}
		})
	}
}

// TestPubrelResentAfterReconnect: a QoS 2 message whose PUBREC arrived is completed with
// PUBREL, not a second PUBLISH, after reconnecting.
func TestPubrelResentAfterReconnect(t *testing.T) {
	leakCheck(t)
	fb := startFake(t, packet.V5)
	c, fc := connectFake(t, fb, fastReconnect(fb.url(), packet.V5), false)
	tok := c.PublishAsync(context.Background(), &fennec.Message{Topic: "t", QoS: 2, Payload: []byte("x")})
	p := fc.readType(packet.PUBLISH).(*packet.Publish)
	fc.write(&packet.Pubrec{PacketID: p.PacketID})
	fc.readType(packet.PUBREL)
	fc.nc.Close()
	fc2 := fb.next(t)
	fc2.accept(true)
	rel := fc2.readType(packet.PUBREL).(*packet.Pubrel)
	if rel.PacketID != p.PacketID {
		t.Fatalf("PUBREL id %d, want %d", rel.PacketID, p.PacketID)
	}
	fc2.write(&packet.Pubcomp{PacketID: p.PacketID})
	if err := tok.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// TestInboundQoS2ExactlyOnce: a QoS 2 message the broker sends again (DUP, same ID) before
// PUBREL is acknowledged with PUBREC but given to the handler only once.
func TestInboundQoS2ExactlyOnce(t *testing.T) {
	leakCheck(t)
	fb := startFake(t, packet.V5)
	got := newCollector(10)
	cfg := fastReconnect(fb.url(), packet.V5)
	cfg.DefaultHandler = got.handler
	_, fc := connectFake(t, fb, cfg, false)
	pub := &packet.Publish{QoS: 2, Topic: "a/b", PacketID: 7, Payload: []byte("once")}
	fc.write(pub)
	if rec := fc.readType(packet.PUBREC).(*packet.Pubrec); rec.PacketID != 7 {
		t.Fatalf("PUBREC %d", rec.PacketID)
	}
	// The broker did not see the PUBREC, reconnects, and sends the message again.
	fc.nc.Close()
	fc2 := fb.next(t)
	fc2.accept(true)
	dup := *pub
	dup.Dup = true
	fc2.write(&dup)
	if rec := fc2.readType(packet.PUBREC).(*packet.Pubrec); rec.PacketID != 7 {
		t.Fatalf("PUBREC %d", rec.PacketID)
	}
	fc2.write(&packet.Pubrel{PacketID: 7})
	if comp := fc2.readType(packet.PUBCOMP).(*packet.Pubcomp); comp.PacketID != 7 || comp.ReasonCode != 0 {
		t.Fatalf("PUBCOMP %d code %v", comp.PacketID, comp.ReasonCode)
	}
	// After PUBREL the ID is free again: a new message with it is a new message.
	fc2.write(&packet.Publish{QoS: 2, Topic: "a/b", PacketID: 7, Payload: []byte("second")})
	fc2.readType(packet.PUBREC)
	if m := got.next(t); string(m.Payload) != "once" {
		t.Fatalf("got %q", m.Payload)
	}
	if m := got.next(t); string(m.Payload) != "second" {
		t.Fatalf("got %q, want the second message (the duplicate must not be delivered)", m.Payload)
	}
}

// TestOfflineQueueFull: while offline, Publish queues up to MaxOfflineQueue messages and then
// fails with ErrQueueFull — never a false success; the queued ones are sent after reconnect.
func TestOfflineQueueFull(t *testing.T) {
	leakCheck(t)
	fb := startFake(t, packet.V5)
	cfg := fastReconnect(fb.url(), packet.V5)
	cfg.MaxOfflineQueue = 3
	lost := make(chan error, 1)
	cfg.OnConnectionLost = func(_ *fennec.Client, err error) { lost <- err }
	c, fc := connectFake(t, fb, cfg, false)
	fc.nc.Close()
	<-lost
	var toks []*fennec.Token
	for i := 0; i < 3; i++ {
		toks = append(toks, c.PublishAsync(context.Background(), &fennec.Message{Topic: "q", QoS: packet.QoS(i % 2), Payload: []byte(fmt.Sprint(i))}))
	}
	if err := c.Publish(testCtx(t), &fennec.Message{Topic: "q", QoS: 1}); !errors.Is(err, fennec.ErrQueueFull) {
		t.Fatalf("4th offline Publish: %v, want ErrQueueFull", err)
	}
	fc2 := fb.next(t)
	fc2.accept(false)
	for i := 0; i < 3; i++ {
		p := fc2.readType(packet.PUBLISH).(*packet.Publish)
		if string(p.Payload) != fmt.Sprint(i) {
			t.Fatalf("queued message %d: %q", i, p.Payload)
		}
		if p.QoS == 1 {
			fc2.write(&packet.Puback{PacketID: p.PacketID})
		}
	}
	for i, tok := range toks {
		if err := tok.Wait(testCtx(t)); err != nil {
			t.Fatalf("queued message %d: %v", i, err)
		}
	}
}
