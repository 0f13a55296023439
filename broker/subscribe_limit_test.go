package broker_test

import (
	"net"
	"testing"

	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
)

// TestSubscribeFilterLimit: a SUBSCRIBE with more filters than MaxSubscribeFilters (1,024 by
// default) is answered with every filter refused (MQTT 5: 0x97 Quota exceeded; 3.1.1: 0x80),
// without reaching mochi — 65,535 filters of "/" took it 17 s and were granted — and the
// connection goes on: a SUBSCRIBE within the limit is granted.
func TestSubscribeFilterLimit(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			c, err := net.Dial("tcp", b.TCPAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if v == packet.V5 {
				connectRaw(t, c, connect5("many-5", 30))
			} else {
				connectRaw(t, c, connect311("many-3", 30))
			}
			many := &packet.Subscribe{PacketID: 7}
			for range 65535 / 8 {
				many.Subscriptions = append(many.Subscriptions, packet.Subscription{Filter: "/", QoS: 1})
			}
			raw, err := many.Append(nil, v)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(raw); err != nil {
				t.Fatal(err)
			}
			p, err := readPacket(c)
			if err != nil || p.kind() != 9 {
				t.Fatalf("got %v, type %d; want SUBACK", err, p.kind())
			}
			ack, err := packet.Decode(v, p.header, p.body)
			if err != nil {
				t.Fatal(err)
			}
			want := packet.ReasonCode(0x80)
			if v == packet.V5 {
				want = packet.QuotaExceeded
			}
			sa := ack.(*packet.Suback)
			if sa.PacketID != 7 || len(sa.ReasonCodes) != len(many.Subscriptions) {
				t.Fatalf("SUBACK id %d with %d codes, want id 7 and %d", sa.PacketID, len(sa.ReasonCodes), len(many.Subscriptions))
			}
			for _, rc := range sa.ReasonCodes {
				if rc != want {
					t.Fatalf("reason %v, want %v for every filter", rc, want)
				}
			}
			c.Write(subscribe(v == packet.V5, 8, "few/t", 1))
			p, err = readPacket(c)
			if err != nil || p.kind() != 9 {
				t.Fatalf("after the refusal: %v, type %d; want SUBACK", err, p.kind())
			}
			if code := p.body[len(p.body)-1]; code != 1 {
				t.Fatalf("a SUBSCRIBE within the limit got code %#x, want granted QoS 1", code)
			}
		})
	}
}
