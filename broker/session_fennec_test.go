package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
)

// fennecSession connects a Fennec client with a persistent session (CleanStart false; MQTT 5:
// Session Expiry one hour) over the TLS 1.3 listener with the test client certificate.
func fennecSession(t *testing.T, b *brokertest.Broker, id string, v packet.Version, h fennec.MessageHandler) *fennec.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := fennec.Config{
		Server:           "mqtts://" + b.TLSAddr,
		ClientID:         id,
		Version:          v,
		TLSConfig:        b.ClientTLSConfig("fennec-client"),
		DisableReconnect: true,
		DefaultHandler:   h,
	}
	if v == packet.V5 {
		cfg.SessionExpiry = time.Hour
	}
	c, err := fennec.Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The Fennec client as subscriber and publisher: a persistent session, 3.1.1 and 5, QoS 1 and
// 2; messages published while it is offline arrive in order after it reconnects, the CONNACK
// says the session is present, and the client gets them, and later messages, without
// subscribing again.
func TestOfflineQueueFennecClient(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		for _, qos := range []packet.QoS{1, 2} {
			t.Run(fmt.Sprintf("v%d/qos%d", v, qos), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				id := fmt.Sprintf("fennec-sub-%d-%d", v, qos)
				topic := "queue/" + id
				sub := fennecSession(t, b, id, v, nil)
				if _, err := sub.Subscribe(ctx, func(*fennec.Message) {}, packet.Subscription{Filter: topic, QoS: qos}); err != nil {
					t.Fatal(err)
				}
				if err := sub.Disconnect(ctx); err != nil {
					t.Fatal(err)
				}
				offline(t, b, id)

				pub := fennecSession(t, b, id+"-pub", v, nil)
				publish := func(msgs []string) {
					for _, m := range msgs {
						if err := pub.Publish(ctx, &fennec.Message{Topic: topic, QoS: qos, Payload: []byte(m)}); err != nil {
							t.Fatalf("publish %s: %v", m, err)
						}
					}
				}
				got := make(chan string, 64)
				receive := func(want []string) {
					t.Helper()
					var recv []string
					for len(recv) < len(want) {
						select {
						case m := <-got:
							recv = append(recv, m)
						case <-ctx.Done():
							t.Fatalf("received only %q", recv)
						}
					}
					sameList(t, "messages received", recv, want)
				}
				handler := func(m *fennec.Message) {
					if m.Topic != topic || m.QoS != qos {
						t.Errorf("got %s QoS %d, want %s QoS %d", m.Topic, m.QoS, topic, qos)
					}
					got <- string(m.Payload)
				}
				// Two rounds: the second finds a session that was taken over once already.
				for round, msgs := range [][]string{numbered("f", 20), numbered("g", 5)} {
					publish(msgs)
					stored(t, b, id, len(msgs))
					back := fennecSession(t, b, id, v, handler)
					if _, ack := back.ConnectionState(); ack == nil || !ack.SessionPresent {
						t.Fatalf("round %d: CONNACK session present = false after reconnecting", round)
					}
					receive(msgs)
					// The subscription came back with the session: a message published now
					// arrives without a new SUBSCRIBE.
					live := fmt.Sprintf("live-%d", round)
					publish([]string{live})
					receive([]string{live})
					// Each client here is a new process: without a session.Store it forgets the
					// QoS 2 flows it has not finished, so they finish before it leaves.
					waitFor(t, "finished QoS flows", func() bool {
						cl, ok := b.Server().Clients.Get(id)
						return ok && cl.State.Inflight.Len() == 0
					})
					if err := back.Disconnect(ctx); err != nil {
						t.Fatal(err)
					}
					offline(t, b, id)
				}
			})
		}
	}
}

// Retained messages and wills still work, and a will reaches an offline persistent session too.
func TestRetainedAndWill(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	host, port := splitAddr(b.TCPAddr)
	for _, v := range []string{"mqttv311", "mqttv5"} {
		t.Run(v, func(t *testing.T) {
			conn := []string{"-h", host, "-p", port, "-V", v}
			topic := "retained/" + v
			if r := run(t, "mosquitto_pub", append(conn, "-q", "1", "-r", "-t", topic, "-m", "kept")...); r.code != 0 {
				t.Fatalf("mosquitto_pub -r: %s", r.out)
			}
			r := run(t, "mosquitto_sub", append(conn, "-t", topic, "-C", "1", "-W", "20", "-v")...)
			if r.code != 0 || r.out != topic+" kept\n" {
				t.Fatalf("retained message: exit %d, %q", r.code, r.out)
			}

			// One subscriber online, one offline with a persistent session.
			will := "will/" + v
			offlineID := "will-offline-" + v
			if r := run(t, "mosquitto_sub", append(conn, "-c", "-x", "3600", "-i", offlineID, "-q", "1", "-t", will, "-E")...); r.code != 0 {
				t.Fatalf("mosquitto_sub -E: %s", r.out)
			}
			offline(t, b, offlineID)
			online := startCmd(t, "mosquitto_sub", append(conn, "-i", "will-online-"+v, "-q", "1", "-t", will, "-C", "1")...)
			waitFor(t, "the online subscriber", subscribed(b, "will-online-"+v, 1))

			ver := packet.V311
			if v == "mqttv5" {
				ver = packet.V5
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			dying, err := fennec.Connect(ctx, fennec.Config{
				Server: "mqtt://" + b.TCPAddr, ClientID: "dying-" + v, Version: ver, DisableReconnect: true,
				Will: &fennec.Message{Topic: will, QoS: 1, Payload: []byte("gone")},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer dying.Close()
			if err := b.Faults().DropClient("dying-" + v); err != nil {
				t.Fatal(err)
			}
			if r := online.wait(); r.code != 0 || r.out != "gone\n" {
				t.Fatalf("online subscriber: exit %d, %q; want the will", r.code, r.out)
			}
			stored(t, b, offlineID, 1)
			r = run(t, "mosquitto_sub", append(conn, "-c", "-x", "3600", "-i", offlineID, "-q", "1", "-t", will, "-C", "1", "-W", "20")...)
			if r.code != 0 || r.out != "gone\n" {
				t.Fatalf("offline subscriber after reconnecting: exit %d, %q; want the will", r.code, r.out)
			}
		})
	}
}

// AWS emulation: an MQTT 5 client asking for a two-hour session is granted AWS's one hour, and
// the CONNACK's Session Expiry Interval says so (MQTT 5 §3.2.2.3.2).
func TestAWSSessionExpiryGranted(t *testing.T) {
	b := startAWS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := fennec.Connect(ctx, fennec.Config{
		Server:           "mqtts://" + b.TLSAddr,
		ClientID:         "thing-1",
		TLSConfig:        b.ClientTLSConfig("thing-1"),
		SessionExpiry:    2 * time.Hour,
		DisableReconnect: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, ack := c.ConnectionState()
	if !ack.Props.Has(packet.PropSessionExpiry) || ack.Props.SessionExpiryInterval != broker.AWSSessionExpiry {
		t.Fatalf("CONNACK Session Expiry Interval %v (set: %v), want %d", ack.Props.SessionExpiryInterval,
			ack.Props.Has(packet.PropSessionExpiry), broker.AWSSessionExpiry)
	}
}
