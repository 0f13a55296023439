package packet_test

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
	"github.com/fennec-mqtt/fennec/packet"
)

// peer is one raw MQTT connection driven with the codec only.
type peer struct {
	t *testing.T
	v packet.Version
	c net.Conn
	r *packet.Reader
	w *packet.Writer
}

func dialPeer(t *testing.T, addr string, v packet.Version, clientID string) *peer {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A bound on a stuck broker, not a timing assertion.
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	p := &peer{t: t, v: v, c: c, r: packet.NewReader(c, 0), w: packet.NewWriter(c)}
	conn := &packet.Connect{Version: v, CleanStart: true, KeepAlive: 60, ClientID: clientID}
	if v == packet.V5 {
		conn.Props.SetSessionExpiryInterval(0)
		conn.Props.SetReceiveMaximum(10)
		conn.Props.SetMaximumPacketSize(4 << 20)
		conn.Props.AddUserProperty("suite", "packet")
	}
	p.send(conn)
	ack := p.expect(packet.CONNACK).(*packet.Connack)
	if ack.ReasonCode != 0 || ack.SessionPresent {
		t.Fatalf("CONNACK %+v", ack)
	}
	return p
}

func (p *peer) send(pk packet.Packet) {
	p.t.Helper()
	if err := p.w.WritePacket(pk, p.v); err != nil {
		p.t.Fatalf("write %v: %v", pk.Type(), err)
	}
}

func (p *peer) expect(t packet.Type) packet.Packet {
	p.t.Helper()
	pk, err := p.r.ReadPacket(p.v)
	if err != nil {
		p.t.Fatalf("waiting for %v: %v", t, err)
	}
	if pk.Type() != t {
		p.t.Fatalf("got %v, want %v", pk.Type(), t)
	}
	return pk
}

// TestInteropMosquitto drives mosquitto with packets from this codec only: CONNECT, SUBSCRIBE,
// the QoS 0, 1 and 2 flows in both directions, a 1 MiB payload (written with writev),
// UNSUBSCRIBE, PINGREQ and DISCONNECT, for MQTT 3.1.1 and 5.0.
func TestInteropMosquitto(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.Options{})
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			sub := dialPeer(t, b.Addr, v, "interop-sub-"+v.String())
			pub := dialPeer(t, b.Addr, v, "interop-pub-"+v.String())

			s := &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "fennec/+/t", QoS: 2}}}
			if v == packet.V5 {
				s.Props.SubscriptionIdentifiers = []uint32{9}
			}
			sub.send(s)
			sa := sub.expect(packet.SUBACK).(*packet.Suback)
			if sa.PacketID != 1 || len(sa.ReasonCodes) != 1 || sa.ReasonCodes[0] != packet.GrantedQoS2 {
				t.Fatalf("SUBACK %+v", sa)
			}

			big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
			msgs := []*packet.Publish{
				{Topic: "fennec/a/t", QoS: 2, PacketID: 10, Payload: []byte("exactly once")},
				{Topic: "fennec/b/t", QoS: 1, PacketID: 11, Payload: big},
				{Topic: "fennec/c/t", QoS: 0, Payload: []byte("at most once")},
			}
			if v == packet.V5 {
				msgs[0].Props.SetContentType("text/plain")
				msgs[0].Props.SetMessageExpiryInterval(300)
				msgs[0].Props.SetResponseTopic("fennec/reply")
				msgs[0].Props.SetCorrelationData([]byte{1, 2, 3})
				msgs[0].Props.AddUserProperty("k", "v")
			}
			for _, m := range msgs {
				pub.send(m)
				switch m.QoS {
				case 1:
					if a := pub.expect(packet.PUBACK).(*packet.Puback); a.PacketID != m.PacketID || a.ReasonCode.IsError() {
						t.Fatalf("PUBACK %+v", a)
					}
				case 2:
					if a := pub.expect(packet.PUBREC).(*packet.Pubrec); a.PacketID != m.PacketID || a.ReasonCode.IsError() {
						t.Fatalf("PUBREC %+v", a)
					}
					pub.send(&packet.Pubrel{PacketID: m.PacketID})
					if a := pub.expect(packet.PUBCOMP).(*packet.Pubcomp); a.PacketID != m.PacketID {
						t.Fatalf("PUBCOMP %+v", a)
					}
				}
			}

			// The broker may interleave the next PUBLISH with the QoS 2 handshake.
			received, pubrels := 0, 0
			for received < len(msgs) || pubrels < 1 {
				pk, err := sub.r.ReadPacket(v)
				if err != nil {
					t.Fatal(err)
				}
				switch got := pk.(type) {
				case *packet.Pubrel:
					pubrels++
					sub.send(&packet.Pubcomp{PacketID: got.PacketID})
				case *packet.Publish:
					i := received
					received++
					m := msgs[i]
					if got.Topic != m.Topic || got.QoS != m.QoS || !bytes.Equal(got.Payload, m.Payload) {
						t.Fatalf("message %d: got %s QoS %d %d bytes, want %s QoS %d %d bytes", i, got.Topic, got.QoS, len(got.Payload), m.Topic, m.QoS, len(m.Payload))
					}
					if v == packet.V5 {
						if len(got.Props.SubscriptionIdentifiers) != 1 || got.Props.SubscriptionIdentifiers[0] != 9 {
							t.Errorf("message %d: subscription identifiers %v", i, got.Props.SubscriptionIdentifiers)
						}
						if i == 0 && (got.Props.ContentType != "text/plain" || got.Props.ResponseTopic != "fennec/reply" ||
							!bytes.Equal(got.Props.CorrelationData, []byte{1, 2, 3}) || len(got.Props.UserProperties) != 1 ||
							!got.Props.Has(packet.PropMessageExpiry)) {
							t.Errorf("message 0 properties: %+v", got.Props)
						}
					}
					switch got.QoS {
					case 1:
						sub.send(&packet.Puback{PacketID: got.PacketID})
					case 2:
						sub.send(&packet.Pubrec{PacketID: got.PacketID})
					}
				default:
					t.Fatalf("unexpected %v", pk.Type())
				}
			}

			sub.send(&packet.Unsubscribe{PacketID: 2, Filters: []string{"fennec/+/t", "never/subscribed"}})
			ua := sub.expect(packet.UNSUBACK).(*packet.Unsuback)
			if ua.PacketID != 2 {
				t.Fatalf("UNSUBACK %+v", ua)
			}
			if v == packet.V5 && (len(ua.ReasonCodes) != 2 || ua.ReasonCodes[0] != packet.Success || ua.ReasonCodes[1] != packet.NoSubscriptionExisted) {
				t.Errorf("UNSUBACK reason codes %v", ua.ReasonCodes)
			}
			sub.send(&packet.Pingreq{})
			sub.expect(packet.PINGRESP)
			for _, p := range []*peer{sub, pub} {
				p.send(&packet.Disconnect{})
				if _, err := p.r.ReadPacket(v); err == nil {
					t.Error("connection still open after DISCONNECT")
				}
			}
		})
	}
}
