package fennec_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// TestOverlappingFiltersOncePerSubscription: on MQTT 5, mosquitto sends a message that matches
// two subscriptions of the client (a/# and a/+) once per subscription. Each subscription's
// handler runs once per message: the client gives every Subscribe call a Subscription
// Identifier and routes each copy to the subscription it was sent for. Each handler used to run
// twice per message. On 3.1.1 the broker sends one copy, which reaches both handlers.
func TestOverlappingFiltersOncePerSubscription(t *testing.T) {
	b := startMosquitto(t)
	for _, v := range versions {
		t.Run(vname(v), func(t *testing.T) {
			leakCheck(t)
			ctx := testCtx(t)
			c := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, Version: v, CleanStart: true})
			base := "overlap/" + c.ClientID()
			var hashN, plusN atomic.Int64
			if _, err := c.Subscribe(ctx, func(*fennec.Message) { hashN.Add(1) }, sub(base+"/#", 1)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Subscribe(ctx, func(*fennec.Message) { plusN.Add(1) }, sub(base+"/+", 1)); err != nil {
				t.Fatal(err)
			}
			const n = 20
			for i := 0; i < n; i++ {
				if err := c.Publish(ctx, &fennec.Message{Topic: base + "/x", QoS: 1}); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for (hashN.Load() < n || plusN.Load() < n) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond) // any extra copies arrive
			if hashN.Load() != n || plusN.Load() != n {
				t.Fatalf("a/# handler ran %d times, a/+ handler %d times, for %d messages", hashN.Load(), plusN.Load(), n)
			}
		})
	}
}

// TestResubscribeKeepsIdentifiers: when the broker lost the session, each subscription is
// restored with the Subscription Identifier it was made with, one SUBSCRIBE per identifier.
func TestResubscribeKeepsIdentifiers(t *testing.T) {
	leakCheck(t)
	fb := startFake(t, packet.V5)
	c, fc := connectFake(t, fb, fastReconnect(fb.url(), packet.V5), false)
	want := map[string]uint32{}
	for _, f := range []string{"a/#", "b/+"} {
		res := make(chan error, 1)
		go func() { _, err := c.Subscribe(testCtx(t), func(*fennec.Message) {}, sub(f, 1)); res <- err }()
		s := fc.readType(packet.SUBSCRIBE).(*packet.Subscribe)
		if len(s.Props.SubscriptionIdentifiers) != 1 || s.Props.SubscriptionIdentifiers[0] == 0 {
			t.Fatalf("SUBSCRIBE %s without a Subscription Identifier", f)
		}
		want[f] = s.Props.SubscriptionIdentifiers[0]
		fc.write(&packet.Suback{PacketID: s.PacketID, ReasonCodes: []packet.ReasonCode{1}})
		if err := <-res; err != nil {
			t.Fatal(err)
		}
	}
	if want["a/#"] == want["b/+"] {
		t.Fatalf("two Subscribe calls share identifier %d", want["a/#"])
	}
	fc.nc.Close()
	fc2 := fb.next(t)
	fc2.accept(false)
	for range 2 {
		s := fc2.readType(packet.SUBSCRIBE).(*packet.Subscribe)
		f := s.Subscriptions[0].Filter
		if len(s.Subscriptions) != 1 || len(s.Props.SubscriptionIdentifiers) != 1 || s.Props.SubscriptionIdentifiers[0] != want[f] {
			t.Fatalf("restored %v with identifiers %v, want %d", s.Subscriptions, s.Props.SubscriptionIdentifiers, want[f])
		}
		fc2.write(&packet.Suback{PacketID: s.PacketID, ReasonCodes: []packet.ReasonCode{1}})
	}
}
