package fennec_test

import (
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/packet"
)

// TestDisconnectFinishesQoS2: Disconnect waits for the PUBREL of a QoS 2 message already
// delivered, sends its PUBCOMP, then DISCONNECT, and nothing after it; a message arriving
// meanwhile is neither delivered nor acknowledged (the broker keeps it). `fennec sub -C N -q 2`
// used to send DISCONNECT in the middle of the handshake, and sometimes PUBCOMP after it.
func TestDisconnectFinishesQoS2(t *testing.T) {
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(vname(v), func(t *testing.T) {
			leakCheck(t)
			fb := startFake(t, v)
			got := newCollector(4)
			cfg := fastReconnect(fb.url(), v)
			cfg.DefaultHandler = got.handler
			c, fc := connectFake(t, fb, cfg, false)
			fc.write(&packet.Publish{Topic: "q2", QoS: 2, PacketID: 5, Payload: []byte("a")})
			got.next(t)
			if rec := fc.readType(packet.PUBREC).(*packet.Pubrec); rec.PacketID != 5 {
				t.Fatalf("PUBREC %d", rec.PacketID)
			}
			done := make(chan error, 1)
			go func() { done <- c.Disconnect(testCtx(t)) }()
			time.Sleep(100 * time.Millisecond)
			fc.write(&packet.Publish{Topic: "q2", QoS: 2, PacketID: 6, Payload: []byte("late")})
			time.Sleep(50 * time.Millisecond)
			fc.write(&packet.Pubrel{PacketID: 5})
			sent := fc.expectClosed()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			var types []packet.Type
			for _, p := range sent {
				if p.Type() != packet.PINGREQ {
					types = append(types, p.Type())
				}
			}
			if len(types) != 2 || types[0] != packet.PUBCOMP || types[1] != packet.DISCONNECT {
				t.Fatalf("client sent %v after the Disconnect call, want [PUBCOMP DISCONNECT]", types)
			}
			if comp := sent[0].(*packet.Pubcomp); comp.PacketID != 5 {
				t.Fatalf("PUBCOMP %d", comp.PacketID)
			}
			select {
			case m := <-got:
				t.Fatalf("message %q delivered during Disconnect", m.Payload)
			default:
			}
		})
	}
}
