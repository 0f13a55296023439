package fennec_test

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
	"github.com/fennec-mqtt/fennec/packet"
)

// TestOversizeMessage311: an MQTT 3.1.1 broker cannot be told the largest packet the client
// accepts (3.1.1 has no Maximum Packet Size), so a message larger than Config.MaxPacketSize is
// not the broker's fault. The client skips its bytes without holding them, acknowledges it (so
// the broker does not send it again), counts and logs it, and goes on: the messages after it
// arrive and the connection stays up. It used to close the connection with a protocol error;
// with a persistent session mosquitto sent the same message again at every reconnect, so
// nothing after it was ever received (a reconnect loop for good).
func TestOversizeMessage311(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.Options{})
	for _, qos := range []packet.QoS{1, 2, 0} {
		t.Run(qos.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			id := "oversize-311-" + qos.String()
			got := make(chan string, 16)
			var lost atomic.Int32
			cfg := fennec.Config{Server: "mqtt://" + b.Addr, ClientID: id, Version: packet.V311,
				MaxPacketSize: 512, Backoff: func(int) time.Duration { return 50 * time.Millisecond },
				OnConnectionLost: func(*fennec.Client, error) { lost.Add(1) },
				DefaultHandler:   func(m *fennec.Message) { got <- string(m.Payload) }}
			sub, err := fennec.Connect(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if _, err := sub.Subscribe(ctx, func(m *fennec.Message) { got <- string(m.Payload) }, packet.Subscription{Filter: "over/" + id, QoS: qos}); err != nil {
				t.Fatal(err)
			}
			pub, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.Addr, CleanStart: true, DisableReconnect: true})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			for _, p := range []string{"before", string(bytes.Repeat([]byte("x"), 5000)), "after"} {
				if err := pub.Publish(ctx, &fennec.Message{Topic: "over/" + id, QoS: qos, Payload: []byte(p)}); err != nil {
					t.Fatal(err)
				}
			}
			var recv []string
			for len(recv) < 2 {
				select {
				case m := <-got:
					recv = append(recv, m)
				case <-ctx.Done():
					t.Fatalf("received %q, %d connections lost: nothing after the message larger than MaxPacketSize arrived", recv, lost.Load())
				}
			}
			if recv[0] != "before" || recv[1] != "after" {
				t.Fatalf("received %q", recv)
			}
			if n := lost.Load(); n != 0 {
				t.Fatalf("%d connections lost over a message larger than MaxPacketSize", n)
			}
			if n := sub.Stats().DroppedOversize; n != 1 {
				t.Fatalf("Stats().DroppedOversize = %d, want 1", n)
			}
		})
	}
}
