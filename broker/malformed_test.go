package broker_test

import (
	"net"
	"testing"

	"github.com/fennec-mqtt/fennec/broker/brokertest"
)

// TestMalformedAfterConnect: an MQTT 5 client whose packet after CONNECT is malformed gets
// DISCONNECT 0x81 (Malformed Packet) before the close [MQTT-4.13.1-1]; a 3.1.1 client is closed.
func TestMalformedAfterConnect(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	for _, v5 := range []bool{true, false} {
		c, err := net.Dial("tcp", b.TCPAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if v5 {
			connectRaw(t, c, connect5("mal5", 30))
		} else {
			connectRaw(t, c, connect311("mal3", 30))
		}
		// PUBLISH QoS 1 whose topic length runs past the packet's end
		c.Write([]byte{0x32, 0x04, 0x00, 0x10, 'a', 'b'})
		p, err := readPacket(c)
		if v5 {
			if err != nil || p.kind() != 14 || len(p.body) == 0 || p.body[0] != 0x81 {
				t.Fatalf("MQTT 5: got %v type %d % x, want DISCONNECT 0x81", err, p.kind(), p.body)
			}
			expectClosed(t, c)
		} else if err == nil {
			t.Fatalf("3.1.1: got packet type %d, want the connection closed", p.kind())
		}
	}
}
