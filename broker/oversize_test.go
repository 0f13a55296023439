package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
)

// TestTooLargeForSubscriber: a QoS 1 or 2 message larger than an MQTT 5 subscriber's Maximum
// Packet Size is discarded for that subscriber, as if it had been sent [MQTT-3.1.2-25], and the
// messages after it still arrive, in order. The broker's delivery queue (flow.go) used to keep
// such a message first in the queue and try it again after every packet: nothing after it was
// ever delivered, and it stayed stored.
func TestTooLargeForSubscriber(t *testing.T) {
	for _, qos := range []packet.QoS{1, 2} {
		t.Run(fmt.Sprint("qos", qos), func(t *testing.T) {
			b := brokertest.Start(t, brokertest.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			id := fmt.Sprint("small-sub-", qos)
			got := make(chan string, 16)
			sub, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, ClientID: id, CleanStart: true,
				ReceiveMaximum: 10, MaxPacketSize: 256, DisableReconnect: true})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if _, err := sub.Subscribe(ctx, func(m *fennec.Message) { got <- string(m.Payload) }, packet.Subscription{Filter: "big/t", QoS: qos}); err != nil {
				t.Fatal(err)
			}
			pub, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, CleanStart: true, DisableReconnect: true})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			big := string(bytes.Repeat([]byte("x"), 1000))
			for _, p := range []string{"before", big, "after-1", "after-2"} {
				if err := pub.Publish(ctx, &fennec.Message{Topic: "big/t", QoS: qos, Payload: []byte(p)}); err != nil {
					t.Fatal(err)
				}
			}
			var recv []string
			for len(recv) < 3 {
				select {
				case m := <-got:
					if len(m) > 256 {
						t.Fatalf("the %d-byte message reached a client whose Maximum Packet Size is 256", len(m))
					}
					recv = append(recv, m)
				case <-ctx.Done():
					t.Fatalf("received %q: the messages after the one too large for the subscriber never came", recv)
				}
			}
			sameList(t, "messages around the one too large", recv, []string{"before", "after-1", "after-2"})
			waitFor(t, "nothing left stored for the subscriber", func() bool { return b.Stored(id) == 0 })
			if !sub.IsConnected() {
				t.Fatal("the subscriber lost its connection")
			}
		})
	}
}

// TestTooLargeStoredForReconnect: a message stored for an offline MQTT 5 session that is larger
// than the Maximum Packet Size the client states when it comes back is discarded for it
// [MQTT-3.1.2-25]; the other stored messages arrive, in order, and the connection stays. mochi
// ends the connection when a re-send at reconnect fails to write ("resend inflight": the write
// of a packet larger than the client's maximum fails), so one such message made the session
// impossible to resume: every reconnect was closed after its CONNACK. With Receive Maximum 1
// the message waits in the broker's own queue instead (flow.go), the path of
// TestTooLargeForSubscriber.
func TestTooLargeStoredForReconnect(t *testing.T) {
	for _, rm := range []uint16{1, 100} {
		t.Run(fmt.Sprint("receive-maximum-", rm), func(t *testing.T) {
			b := brokertest.Start(t, brokertest.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			id := fmt.Sprint("stored-small-", rm)
			got := make(chan string, 16)
			cfg := fennec.Config{Server: "mqtt://" + b.TCPAddr, ClientID: id, SessionExpiry: time.Hour,
				ReceiveMaximum: rm, MaxPacketSize: 256, DisableReconnect: true,
				DefaultHandler: func(m *fennec.Message) { got <- string(m.Payload) }}
			sub, err := fennec.Connect(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sub.Subscribe(ctx, func(*fennec.Message) {}, packet.Subscription{Filter: "big/stored", QoS: 1}); err != nil {
				t.Fatal(err)
			}
			sub.Disconnect(ctx)
			offline(t, b, id)
			pub, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, CleanStart: true, DisableReconnect: true})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			big := string(bytes.Repeat([]byte("x"), 1000))
			for _, p := range []string{"s-1", big, "s-2", "s-3"} {
				if err := pub.Publish(ctx, &fennec.Message{Topic: "big/stored", QoS: 1, Payload: []byte(p)}); err != nil {
					t.Fatal(err)
				}
			}
			stored(t, b, id, 4)
			lost := make(chan error, 1)
			cfg.OnConnectionLost = func(_ *fennec.Client, err error) { lost <- err }
			sub, err = fennec.Connect(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			var recv []string
			for len(recv) < 3 {
				select {
				case m := <-got:
					recv = append(recv, m)
				case err := <-lost:
					t.Fatalf("connection lost after %q: %v", recv, err)
				case <-ctx.Done():
					t.Fatalf("received %q", recv)
				}
			}
			sameList(t, "stored messages around the one too large", recv, []string{"s-1", "s-2", "s-3"})
			waitFor(t, "nothing left stored", func() bool { return b.Stored(id) == 0 })
			select {
			case err := <-lost:
				t.Fatalf("connection lost: %v", err)
			case <-time.After(200 * time.Millisecond):
			}
		})
	}
}

// TestTooLargeNoReceiveMaximum: for an MQTT 5 client that states a Maximum Packet Size and no
// Receive Maximum (mochi writes its messages itself), a QoS 1 message too large for it is
// discarded, not kept: mochi's failed write left it stored and unacknowledged for good, so a
// publisher of large messages could fill the client's table (65,535 packet identifiers) and
// cut it off.
func TestTooLargeNoReceiveMaximum(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	c, err := net.Dial("tcp", b.TCPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const id = "raw-small"
	body := appendString(nil, "MQTT")
	body = append(body, 5, 0x02, 0, 60, 5, 0x27, 0, 0, 1, 0) // Maximum Packet Size 256, no Receive Maximum
	connectRaw(t, c, encodePacket(0x10, appendString(body, id)))
	if _, err := c.Write(subscribe(true, 1, "raw/big", 1)); err != nil {
		t.Fatal(err)
	}
	if p, err := readPacket(c); err != nil || p.kind() != 9 {
		t.Fatalf("SUBACK: %v %v", p, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pub, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, CleanStart: true, DisableReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for _, p := range []string{"before", string(bytes.Repeat([]byte("x"), 1000)), "after"} {
		if err := pub.Publish(ctx, &fennec.Message{Topic: "raw/big", QoS: 1, Payload: []byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	var recv []string
	for len(recv) < 2 {
		p, err := readPacket(c)
		if err != nil {
			t.Fatalf("after %q: %v", recv, err)
		}
		if p.kind() != 3 {
			continue
		}
		tl := int(p.body[0])<<8 | int(p.body[1])
		pid := p.body[2+tl : 4+tl]
		_, rest := props(p.body[4+tl:])
		recv = append(recv, string(rest))
		if _, err := c.Write([]byte{0x40, 2, pid[0], pid[1]}); err != nil {
			t.Fatal(err)
		}
	}
	sameList(t, "messages around the one too large", recv, []string{"before", "after"})
	waitFor(t, "nothing left stored", func() bool { return b.Stored(id) == 0 })
}
