package broker_test

import (
	"fmt"
	"net"
	"testing"

	"github.com/fennec-mqtt/fennec/broker/brokertest"
)

// connectPersistent: clean start 0; MQTT 5 with Session Expiry Interval 3600 s.
func connectPersistent(v5 bool, id string) []byte {
	body := appendString(nil, "MQTT")
	if v5 {
		body = append(body, 5, 0x00, 0, 60, 5, 0x11, 0, 0, 0x0e, 0x10)
	} else {
		body = append(body, 4, 0x00, 0, 60)
	}
	return encodePacket(0x10, appendString(body, id))
}

// packetID returns the packet identifier of a PUBLISH (QoS > 0), or of an acknowledgement.
func packetID(p rawPacket) uint16 {
	if p.kind() == 3 {
		l := int(p.body[0])<<8 | int(p.body[1])
		return uint16(p.body[2+l])<<8 | uint16(p.body[3+l])
	}
	return uint16(p.body[0])<<8 | uint16(p.body[1])
}

func expectPacket(t *testing.T, c net.Conn, kind byte, id uint16) rawPacket {
	t.Helper()
	p, err := readPacket(c)
	if err != nil {
		t.Fatalf("want packet type %d id %d: %v", kind, id, err)
	}
	if p.kind() != kind || packetID(p) != id {
		t.Fatalf("got packet type %d id %d (% x), want type %d id %d", p.kind(), packetID(p), p.body, kind, id)
	}
	return p
}

func send(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// Client and server number their packets independently [MQTT 3.1.1 §2.3.1, MQTT 5 §2.2.1]: with
// the server's deliveries 1 and 2 unacknowledged, the client's SUBSCRIBE 1, QoS 1 PUBLISH 2 and
// QoS 2 PUBLISH 1 are answered with their own identifiers and success, the messages reach a
// subscriber, and the server's deliveries 1 and 2 stay in the session (sent again at the next
// reconnect).
func TestPacketIDsPerDirection(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	host, port := splitAddr(b.TCPAddr)
	for _, v5 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v5=%v", v5), func(t *testing.T) {
			id := fmt.Sprintf("ids-%v", v5)
			dial := func() net.Conn {
				c, err := net.Dial("tcp", b.TCPAddr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			c := dial()
			connectRaw(t, c, connectPersistent(v5, id))
			send(t, c, subscribe(v5, 1, "ids/"+id+"/out", 1))
			expectPacket(t, c, 9, 1)
			send(t, c, []byte{0xE0, 0})
			c.Close()
			offline(t, b, id)
			for _, m := range []string{"d1", "d2"} {
				if r := run(t, "mosquitto_pub", "-h", host, "-p", port, "-q", "1", "-t", "ids/"+id+"/out", "-m", m); r.code != 0 {
					t.Fatalf("mosquitto_pub: %s", r.out)
				}
			}
			stored(t, b, id, 2)
			in := startCmd(t, "mosquitto_sub", "-h", host, "-p", port, "-i", id+"-in", "-t", "ids/"+id+"/in/#", "-C", "2", "-v")
			waitFor(t, "the other subscriber", subscribed(b, id+"-in", 1))

			c = dial()
			if ack := connectRaw(t, c, connectPersistent(v5, id)); ack[2]&1 != 1 {
				t.Fatalf("CONNACK % x: session present 0", ack)
			}
			expectPacket(t, c, 3, 1)
			expectPacket(t, c, 3, 2)
			send(t, c, subscribe(v5, 1, "ids/"+id+"/other", 2))
			if p := expectPacket(t, c, 9, 1); subackCodes(v5, p)[0] != 2 {
				t.Fatalf("SUBACK % x: want QoS 2 granted", p.body)
			}
			send(t, c, publish(v5, "ids/"+id+"/in/q1", 1, 2, []byte("one")))
			if p := expectPacket(t, c, 4, 2); v5 && ackCode(p) != 0 {
				t.Fatalf("PUBACK reason %#x", ackCode(p))
			}
			send(t, c, publish(v5, "ids/"+id+"/in/q2", 2, 1, []byte("two")))
			if p := expectPacket(t, c, 5, 1); v5 && ackCode(p) != 0 {
				t.Fatalf("PUBREC reason %#x", ackCode(p))
			}
			send(t, c, []byte{0x62, 2, 0, 1}) // PUBREL 1
			expectPacket(t, c, 7, 1)
			if r := in.wait(); r.code != 0 || r.out != "ids/"+id+"/in/q1 one\nids/"+id+"/in/q2 two\n" {
				t.Fatalf("subscriber got exit %d, %q", r.code, r.out)
			}
			c.Close()
			offline(t, b, id)

			// The deliveries 1 and 2 were not forgotten.
			c = dial()
			connectRaw(t, c, connectPersistent(v5, id))
			expectPacket(t, c, 3, 1)
			expectPacket(t, c, 3, 2)
			send(t, c, []byte{0x40, 2, 0, 1, 0x40, 2, 0, 2}) // PUBACK 1, PUBACK 2
			send(t, c, []byte{0xC0, 0})                      // PINGREQ: its answer follows the PUBACKs
			if p, err := readPacket(c); err != nil || p.kind() != 13 {
				t.Fatalf("want PINGRESP: %v %v", p.kind(), err)
			}
			if cl, _ := b.Server().Clients.Get(id); cl.State.Inflight.Len() != 0 {
				t.Fatalf("%d messages left in the session", cl.State.Inflight.Len())
			}
		})
	}
}
