package broker_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
)

// TestQueuedFirstDeliveryNotDup: messages stored for an offline session reach the client at its
// reconnect with DUP 0, since no connection was sent them before [MQTT-3.3.1-3] (mochi re-sends
// them all marked DUP; they were); a message sent and not acknowledged before the client left
// comes again with DUP 1 [MQTT-3.3.1-1].
func TestQueuedFirstDeliveryNotDup(t *testing.T) {
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			b := brokertest.Start(t, brokertest.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			id := fmt.Sprintf("dup-%d", v)
			got := make(chan *fennec.Message, 16)
			sub := fennecSession(t, b, id, v, func(m *fennec.Message) { got <- m })
			if _, err := sub.Subscribe(ctx, func(m *fennec.Message) { got <- m }, packet.Subscription{Filter: "dup/#", QoS: 1}); err != nil {
				t.Fatal(err)
			}
			if err := sub.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
			offline(t, b, id)
			pub := fennecSession(t, b, id+"-pub", v, nil)
			for i := range 3 {
				if err := pub.Publish(ctx, &fennec.Message{Topic: fmt.Sprintf("dup/%d", i), QoS: 1}); err != nil {
					t.Fatal(err)
				}
			}
			stored(t, b, id, 3)
			// A raw client takes the session, reads the three, acknowledges none and leaves.
			c, err := net.Dial("tcp", b.TCPAddr)
			if err != nil {
				t.Fatal(err)
			}
			var connect []byte
			if v == packet.V5 {
				connect = encodePacket(0x10, connectBody("MQTT", 5, 0x00, append([]byte{5, 0x11, 0, 0, 0x0e, 0x10}, appendString(nil, id)...)...))
			} else {
				connect = encodePacket(0x10, connectBody("MQTT", 4, 0x00, appendString(nil, id)...))
			}
			if ack := connectRaw(t, c, connect); ack[2]&1 != 1 {
				t.Fatalf("CONNACK % x: session not present", ack)
			}
			for i := range 3 {
				p, err := readPacket(c)
				if err != nil || p.kind() != 3 {
					t.Fatalf("stored message %d: %v (type %d)", i, err, p.kind())
				}
				if p.header&0x08 != 0 {
					t.Errorf("stored message %d: first delivery with DUP 1 [MQTT-3.3.1-3]", i)
				}
			}
			c.Close()
			offline(t, b, id)
			// Sent once, never acknowledged: DUP 1 at the next reconnect.
			again := make(chan *fennec.Message, 16)
			fennecSession(t, b, id, v, func(m *fennec.Message) { again <- m })
			for i := range 3 {
				select {
				case m := <-again:
					if !m.Dup {
						t.Errorf("%s sent again without DUP [MQTT-3.3.1-1]", m.Topic)
					}
				case <-ctx.Done():
					t.Fatalf("message %d not sent again", i)
				}
			}
		})
	}
}
