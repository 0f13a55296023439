package fennec_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// TestSessionLostAfterRelease: the broker took some QoS 2 messages (PUBREC, the client sent
// PUBREL), the connection dropped before PUBCOMP, and the broker comes back without the session
// (CONNACK session-present 0). The released messages fail with ErrDeliveryUnknown — the broker
// acknowledged them and then forgot them, so nobody can say whether they were delivered (mosquitto
// would have dropped them: it forwards on PUBREL); they used to be reported as sent — and the
// others are sent again as new messages. This used to panic with a nil dereference in
// Client.pump (5 published, 3 released) and in Client.up (310 published, 300 released: the queue
// was compacted while up walked it).
func TestSessionLostAfterRelease(t *testing.T) {
	for _, tc := range []struct{ published, released int }{{5, 3}, {310, 300}, {3, 3}, {600, 1}} {
		for _, v := range []packet.Version{packet.V311, packet.V5} {
			t.Run(fmt.Sprintf("%s/%d-%d", vname(v), tc.published, tc.released), func(t *testing.T) {
				leakCheck(t)
				fb := startFake(t, v)
				cfg := fastReconnect(fb.url(), v)
				cfg.SessionExpiry = 3600e9
				cfg.MaxInflight = 1000
				cfg.MaxInflightQoS2 = 65535 // all of them in flight at once, also on 3.1.1
				c, fc := connectFake(t, fb, cfg, false)
				toks := make([]*fennec.Token, tc.published)
				for i := range toks {
					toks[i] = c.PublishAsync(context.Background(), &fennec.Message{Topic: "t", QoS: 2, Payload: []byte{byte(i)}})
				}
				ids := make([]uint16, tc.published)
				for i := range ids {
					ids[i] = fc.readType(packet.PUBLISH).(*packet.Publish).PacketID
				}
				for _, id := range ids[:tc.released] {
					fc.write(&packet.Pubrec{PacketID: id})
				}
				for range tc.released {
					fc.readType(packet.PUBREL)
				}
				fc.nc.Close()

				fc2 := fb.next(t)
				fc2.accept(false)
				seen := map[uint16]bool{}
				for i := tc.released; i < tc.published; i++ {
					p := fc2.readType(packet.PUBLISH).(*packet.Publish)
					if p.Dup {
						t.Fatalf("message %d resent with DUP to a broker that lost the session", i)
					}
					if int(p.Payload[0]) != i%256 {
						t.Fatalf("resent message %d out of order: payload %d", i, p.Payload[0])
					}
					if seen[p.PacketID] {
						t.Fatalf("packet ID %d in flight twice", p.PacketID)
					}
					seen[p.PacketID] = true
					fc2.write(&packet.Pubrec{PacketID: p.PacketID})
				}
				for range tc.published - tc.released {
					rel := fc2.readType(packet.PUBREL).(*packet.Pubrel)
					fc2.write(&packet.Pubcomp{PacketID: rel.PacketID})
				}
				for i, tok := range toks {
					err := tok.Wait(testCtx(t))
					if i < tc.released && !errors.Is(err, fennec.ErrDeliveryUnknown) {
						t.Fatalf("released message %d: %v, want ErrDeliveryUnknown", i, err)
					}
					if i >= tc.released && err != nil {
						t.Fatalf("message %d: %v", i, err)
					}
				}
				if n := c.Pending(); n != 0 {
					t.Fatalf("%d messages pending after all completed", n)
				}
			})
		}
	}
}
