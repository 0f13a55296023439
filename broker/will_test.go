package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
)

// TestWillZeroLengthPayload: a will with a zero-length payload is allowed and published empty,
// on both versions. mochi refused such a CONNECT ("will flag no payload", 0x82 — a code MQTT
// 3.1.1 does not have).
func TestWillZeroLengthPayload(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			got := make(chan *fennec.Message, 1)
			topic := "will/" + v.String()
			sub, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, CleanStart: true})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if _, err := sub.Subscribe(ctx, func(m *fennec.Message) { got <- m }, packet.Subscription{Filter: topic, QoS: 1}); err != nil {
				t.Fatal(err)
			}
			dev, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, Version: v, CleanStart: true,
				Will: &fennec.Message{Topic: topic, QoS: 1}})
			if err != nil {
				t.Fatalf("CONNECT with a zero-length will payload: %v", err)
			}
			dev.Close() // no DISCONNECT: the broker publishes the will
			select {
			case m := <-got:
				if len(m.Payload) != 0 {
					t.Fatalf("will payload %q, want empty", m.Payload)
				}
			case <-ctx.Done():
				t.Fatal("no will")
			}
		})
	}
}
