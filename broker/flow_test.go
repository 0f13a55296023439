package broker_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
)

// More messages stored than the client's Receive Maximum: at reconnect the broker sends no more
// unacknowledged QoS 1 and 2 messages than the client allows [MQTT-3.3.4-9] and the rest as
// acknowledgements free places, in order [MQTT-4.6.0-1]. mosquitto_sub's Receive Maximum is 20;
// it closes the connection with a protocol error when a server exceeds it.
func TestOfflineQueueBeyondReceiveMaximum(t *testing.T) {
	for _, v := range []string{"mqttv5", "mqttv311"} {
		for _, qos := range []string{"1", "2"} {
			t.Run(v+"/qos"+qos, func(t *testing.T) {
				b := brokertest.Start(t, brokertest.Options{})
				host, port := splitAddr(b.TCPAddr)
				conn := []string{"-h", host, "-p", port, "-V", v}
				sub := conn
				if v == "mqttv5" {
					sub = append(append([]string{}, conn...), "-x", "3600")
				}
				msgs := numbered("m", 50)
				got := mosquittoOfflineQueue(t, b, "rm-sub", qos, "queue/t", "queue/t", sub, conn, msgs)
				sameList(t, "messages after reconnecting", got, msgs)
			})
		}
	}
}

// The Fennec client with Receive Maximum 5 gets a stored queue of 30 QoS 1 or 2 messages in
// order, and never more than 5 unacknowledged at a time: counted from its packet trace (a
// message is unacknowledged from the PUBLISH read until the PUBACK or PUBCOMP is written; the
// trace sees the written packet before the broker can). New messages published while the queue
// drains come after it [MQTT-4.6.0-6].
func TestOfflineQueueFennecReceiveMaximum(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	for _, qos := range []packet.QoS{1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			id := fmt.Sprintf("fennec-rm-%d", qos)
			topic := "queue/" + id
			const rm = 5
			var (
				mu      sync.Mutex
				open    = map[uint16]bool{}
				maxOpen int
			)
			trace := func(e fennec.TraceEvent) {
				mu.Lock()
				defer mu.Unlock()
				switch p := e.Packet.(type) {
				case *packet.Publish:
					if !e.Outbound && p.QoS > 0 {
						open[p.PacketID] = true
						maxOpen = max(maxOpen, len(open))
					}
				case *packet.Puback:
					if e.Outbound {
						delete(open, p.PacketID)
					}
				case *packet.Pubcomp:
					if e.Outbound {
						delete(open, p.PacketID)
					}
				}
			}
			got := make(chan string, 128)
			connect := func(h fennec.MessageHandler) *fennec.Client {
				c, err := fennec.Connect(ctx, fennec.Config{
					Server: "mqtt://" + b.TCPAddr, ClientID: id, Version: packet.V5,
					SessionExpiry: time.Hour, ReceiveMaximum: rm, DisableReconnect: true,
					DefaultHandler: h, Trace: trace,
				})
				if err != nil {
					t.Fatalf("connect: %v", err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			sub := connect(nil)
			if _, err := sub.Subscribe(ctx, func(*fennec.Message) {}, packet.Subscription{Filter: topic, QoS: qos}); err != nil {
				t.Fatal(err)
			}
			if err := sub.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
			offline(t, b, id)
			pub := fennecSession(t, b, id+"-pub", packet.V5, nil)
			publish := func(msgs []string) {
				for _, m := range msgs {
					if err := pub.Publish(ctx, &fennec.Message{Topic: topic, QoS: qos, Payload: []byte(m)}); err != nil {
						t.Fatalf("publish %s: %v", m, err)
					}
				}
			}
			stored := numbered("s", 30)
			publish(stored)
			waitFor(t, "30 stored messages", func() bool {
				cl, ok := b.Server().Clients.Get(id)
				return ok && cl.Closed() && cl.State.Inflight.Len() >= len(stored)
			})
			connect(func(m *fennec.Message) { got <- string(m.Payload) })
			// Published once the first stored message is here, so after mochi has listed what
			// it re-sends (a message routed before that is re-sent with them, see
			// docs/broker.md).
			var recv []string
			select {
			case m := <-got:
				recv = append(recv, m)
			case <-ctx.Done():
				t.Fatal("no stored message received")
			}
			live := numbered("n", 10)
			publish(live)
			want := append(append([]string{}, stored...), live...)
			for len(recv) < len(want) {
				select {
				case m := <-got:
					recv = append(recv, m)
				case <-ctx.Done():
					t.Fatalf("received only %q", recv)
				}
			}
			sameList(t, "messages received", recv, want)
			mu.Lock()
			defer mu.Unlock()
			if maxOpen > rm {
				t.Fatalf("%d unacknowledged messages at once, Receive Maximum %d", maxOpen, rm)
			}
			if maxOpen < 2 {
				t.Fatalf("at most %d unacknowledged message at once: the trace saw nothing", maxOpen)
			}
		})
	}
}
