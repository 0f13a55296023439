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

// TestServerReceiveMaximum: with the broker's Receive Maximum 2, at most two QoS 1/2 messages
// are in flight [MQTT-4.9.0-2]; Publish beyond the window and queue waits and honours ctx.
func TestServerReceiveMaximum(t *testing.T) {
	leakCheck(t)
	fb := startFake(t, packet.V5)
	cfg := fastReconnect(fb.url(), packet.V5)
	cfg.MaxOfflineQueue = 1
	c, fc := connectFake(t, fb, cfg, false, func(p *packet.Properties) { p.SetReceiveMaximum(2) })
	var toks []*fennec.Token
	for i := 0; i < 3; i++ { // 2 in flight + 1 queued
		toks = append(toks, c.PublishAsync(context.Background(), &fennec.Message{Topic: "w", QoS: 1, Payload: []byte(fmt.Sprint(i))}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Publish(ctx, &fennec.Message{Topic: "w", QoS: 1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish with a full window: %v, want DeadlineExceeded", err)
	}
	p1 := fc.readType(packet.PUBLISH).(*packet.Publish)
	p2 := fc.readType(packet.PUBLISH).(*packet.Publish)
	// Nothing more may come until an acknowledgement: a PINGREQ-free short read must time out.
	fc.nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if p, err := fc.rd.ReadPacket(packet.V5); err == nil {
		t.Fatalf("third packet %v sent beyond Receive Maximum 2", p.Type())
	}
	fc.rd = packet.NewReader(fc.nc, 0)
	fc.write(&packet.Puback{PacketID: p1.PacketID})
	p3 := fc.readType(packet.PUBLISH).(*packet.Publish)
	if string(p3.Payload) != "2" {
		t.Fatalf("third message %q", p3.Payload)
	}
	fc.write(&packet.Puback{PacketID: p2.PacketID}, &packet.Puback{PacketID: p3.PacketID})
	for _, tok := range toks {
		if err := tok.Wait(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWindowRefillsInBatches: a full in-flight window opens again when a quarter of it is
// free, so a burst of acknowledgements becomes one batch of publishes rather than one write per
// acknowledgement; the Receive Maximum is never exceeded and order is kept.
func TestWindowRefillsInBatches(t *testing.T) {
	leakCheck(t)
	fb := startFake(t, packet.V5)
	c, fc := connectFake(t, fb, fastReconnect(fb.url(), packet.V5), false, func(p *packet.Properties) { p.SetReceiveMaximum(8) })
	var toks []*fennec.Token
	for i := 0; i < 12; i++ {
		toks = append(toks, c.PublishAsync(context.Background(), &fennec.Message{Topic: "w", QoS: 1, Payload: []byte(fmt.Sprint(i))}))
	}
	var pubs []*packet.Publish
	for i := 0; i < 8; i++ {
		pubs = append(pubs, fc.readType(packet.PUBLISH).(*packet.Publish))
	}
	noMore := func(what string) {
		fc.nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if p, err := fc.rd.ReadPacket(packet.V5); err == nil {
			t.Fatalf("%s: %v sent", what, p.Type())
		}
		fc.rd = packet.NewReader(fc.nc, 0)
	}
	noMore("window of 8 full")
	fc.write(&packet.Puback{PacketID: pubs[0].PacketID})
	noMore("7 in flight, refill mark 6")
	fc.write(&packet.Puback{PacketID: pubs[1].PacketID})
	for i := 8; i < 10; i++ { // 6 in flight: two more fill the window again
		p := fc.readType(packet.PUBLISH).(*packet.Publish)
		if string(p.Payload) != fmt.Sprint(i) {
			t.Fatalf("publish %d carries %q", i, p.Payload)
		}
		pubs = append(pubs, p)
	}
	noMore("window of 8 full again")
	for _, p := range pubs[2:] {
		fc.write(&packet.Puback{PacketID: p.PacketID})
	}
	for i := 10; i < 12; i++ {
		p := fc.readType(packet.PUBLISH).(*packet.Publish)
		if string(p.Payload) != fmt.Sprint(i) {
			t.Fatalf("publish %d carries %q", i, p.Payload)
		}
		fc.write(&packet.Puback{PacketID: p.PacketID})
	}
	for _, tok := range toks {
		if err := tok.Wait(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestServerMaximumPacketSize: a message larger than the broker's Maximum Packet Size fails
// with ErrPacketTooLarge and is not sent [MQTT-3.1.2-24]; the connection stays up.
func TestServerMaximumPacketSize(t *testing.T) {
	leakCheck(t)
	fb := startFake(t, packet.V5)
	c, fc := connectFake(t, fb, fastReconnect(fb.url(), packet.V5), false, func(p *packet.Properties) { p.SetMaximumPacketSize(100) })
	err := c.Publish(testCtx(t), &fennec.Message{Topic: "big", QoS: 1, Payload: make([]byte, 200)})
	if !errors.Is(err, fennec.ErrPacketTooLarge) {
		t.Fatalf("err %v, want ErrPacketTooLarge", err)
	}
	if err := c.Publish(testCtx(t), &fennec.Message{Topic: "big", QoS: 0, Payload: make([]byte, 20<<10)}); !errors.Is(err, fennec.ErrPacketTooLarge) {
		t.Fatalf("20 KiB payload (written without copying): %v, want ErrPacketTooLarge", err)
	}
	tok := c.PublishAsync(context.Background(), &fennec.Message{Topic: "small", QoS: 1, Payload: []byte("ok")})
	p := fc.readType(packet.PUBLISH).(*packet.Publish)
	if p.Topic != "small" {
		t.Fatalf("sent %q", p.Topic)
	}
	fc.write(&packet.Puback{PacketID: p.PacketID})
	if err := tok.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// TestHandlerPublishes: a handler publishes QoS 1 and subscribes from inside the handler while
// a burst arrives; nothing deadlocks and handlers see messages in order.
func TestHandlerPublishes(t *testing.T) {
	b := startMosquitto(t, "max_queued_messages 0")
	addr := b.Addr
	for _, v := range versions {
		t.Run(vname(v), func(t *testing.T) {
			leakCheck(t)
			ctx := testCtx(t)
			// mosquitto without TCP_NODELAY writes the forwarded message and the PUBACK
			// separately: without TCP_QUICKACK re-armed after reads each round trip here
			// would wait ~40 ms for our delayed ACK.
			c := connect(t, fennec.Config{Server: "mqtt://" + addr, Version: v, CleanStart: true,
				OnConnectionLost: func(_ *fennec.Client, err error) { t.Errorf("connection lost: %v", err) }})
			echoed := newCollector(2000)
			base := "hp/" + c.ClientID()
			const n = 1500
			next := 0
			orderErr := make(chan error, 1)
			if _, err := c.Subscribe(ctx, echoed.handler, sub(base+"/echo", 1)); err != nil {
				t.Fatal(err)
			}
			_, err := c.Subscribe(ctx, func(m *fennec.Message) {
				if string(m.Payload) != fmt.Sprint(next) {
					select {
					case orderErr <- fmt.Errorf("got %q, want %d", m.Payload, next):
					default:
					}
				}
				next++
				if err := c.Publish(ctx, &fennec.Message{Topic: base + "/echo", QoS: 1, Payload: m.Payload}); err != nil {
					t.Errorf("Publish in handler: %v", err)
				}
				if next == 1 {
					if _, err := c.Subscribe(ctx, func(*fennec.Message) {}, sub(base+"/other", 0)); err != nil {
						t.Errorf("Subscribe in handler: %v", err)
					}
				}
			}, sub(base+"/in", 0))
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < n; i++ {
				c.PublishAsync(context.Background(), &fennec.Message{Topic: base + "/in", Payload: []byte(fmt.Sprint(i))})
			}
			for i := 0; i < n; i++ {
				echoed.next(t)
			}
			select {
			case err := <-orderErr:
				t.Fatal(err)
			default:
			}
			if err := c.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
