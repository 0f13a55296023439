package fennec_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// TestPubSubMosquitto publishes at QoS 0, 1 and 2 through mosquitto with both protocol versions
// and checks every message arrives once, in order, with its QoS.
func TestPubSubMosquitto(t *testing.T) {
	b := startMosquitto(t)
	for _, v := range versions {
		t.Run(vname(v), func(t *testing.T) {
			leakCheck(t)
			testPubSub(t, "mqtt://"+b.Addr, v)
		})
	}
}

func TestPubSubMochi(t *testing.T) {
	addr := startMochi(t)
	for _, v := range versions {
		t.Run(vname(v), func(t *testing.T) { testPubSub(t, "mqtt://"+addr, v) })
	}
}

func testPubSub(t *testing.T, server string, v packet.Version) {
	ctx := testCtx(t)
	subC := connect(t, fennec.Config{Server: server, Version: v, CleanStart: true})
	pubC := connect(t, fennec.Config{Server: server, Version: v, CleanStart: true})
	got := newCollector(100)
	topic := fmt.Sprintf("fennec/test/%s/%s", t.Name(), subC.ClientID())
	sa, err := subC.Subscribe(ctx, got.handler, sub(topic+"/+", 2))
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if len(sa.ReasonCodes) != 1 || sa.ReasonCodes[0] != 2 {
		t.Fatalf("SUBACK codes %v, want [2]", sa.ReasonCodes)
	}
	for i := 0; i < 30; i++ {
		q := packet.QoS(i % 3)
		if err := pubC.Publish(ctx, &fennec.Message{Topic: fmt.Sprintf("%s/%d", topic, i), QoS: q, Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatalf("Publish QoS %d: %v", q, err)
		}
	}
	big := make([]byte, 100<<10)
	for i := range big {
		big[i] = byte(i)
	}
	if err := pubC.Publish(ctx, &fennec.Message{Topic: topic + "/big", QoS: 1, Payload: big}); err != nil {
		t.Fatalf("Publish 100 KiB: %v", err)
	}
	for i := 0; i < 30; i++ {
		m := got.next(t)
		if string(m.Payload) != fmt.Sprint(i) || m.QoS != packet.QoS(i%3) || m.Topic != fmt.Sprintf("%s/%d", topic, i) {
			t.Fatalf("message %d: got %q on %q at QoS %d", i, m.Payload, m.Topic, m.QoS)
		}
	}
	if m := got.next(t); m.Topic != topic+"/big" || string(m.Payload) != string(big) {
		t.Fatalf("100 KiB message: topic %q, %d bytes, intact %v", m.Topic, len(m.Payload), string(m.Payload) == string(big))
	}
	if err := pubC.Disconnect(ctx); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	if err := subC.Disconnect(ctx); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	if err := pubC.Publish(ctx, &fennec.Message{Topic: "x", Payload: nil}); !errors.Is(err, fennec.ErrClosed) {
		t.Fatalf("Publish after Disconnect: %v, want ErrClosed", err)
	}
}
