package fennec_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
	"github.com/fennec-mqtt/fennec/packet"
)

// MQTT 5 subscription options against mosquitto and the embedded broker: No Local keeps the
// client's own messages away; Retain Handling 2 sends no retained message at subscribe, 0 sends
// it each time, 1 only for a new subscription; Retain As Published keeps the retain flag of a
// live message; each message carries the Subscription Identifier of its subscription.
func TestSubscriptionOptions(t *testing.T) {
	for name, addr := range map[string]func(*testing.T) string{
		"mosquitto": func(t *testing.T) string { return mosquittotest.Start(t, mosquittotest.Options{Quiet: true}).Addr },
		"embedded": func(t *testing.T) string {
			return brokertest.Start(t, brokertest.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).TCPAddr
		},
	} {
		t.Run(name, func(t *testing.T) {
			url := "mqtt://" + addr(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			other, err := fennec.Connect(ctx, fennec.Config{Server: url})
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			// other receives its own message before c subscribes: mochi may forward a message
			// after its PUBACK, and a subscription made in between would get it live
			fanned := make(chan struct{}, 1)
			if _, err := other.Subscribe(ctx, func(*fennec.Message) { fanned <- struct{}{} }, packet.Subscription{Filter: "opt/ret", QoS: 1}); err != nil {
				t.Fatal(err)
			}
			if err := other.Publish(ctx, &fennec.Message{Topic: "opt/ret", QoS: 1, Retain: true, Payload: []byte("kept")}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-fanned:
			case <-ctx.Done():
				t.Fatal("the retained message was not forwarded to its publisher's subscription")
			}
			if err := other.Unsubscribe(ctx, "opt/ret"); err != nil {
				t.Fatal(err)
			}
			c, err := fennec.Connect(ctx, fennec.Config{Server: url})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			type rec struct {
				topic, payload string
				retain         bool
				subIDs         []uint32
			}
			recv := func(filter string, opts packet.Subscription) (chan rec, func()) {
				ch := make(chan rec, 10)
				opts.Filter, opts.QoS = filter, 1
				if _, err := c.Subscribe(ctx, func(m *fennec.Message) {
					ch <- rec{m.Topic, string(m.Payload), m.Retain, m.Props.SubscriptionIdentifiers}
				}, opts); err != nil {
					t.Fatal(err)
				}
				return ch, func() { c.Unsubscribe(ctx, filter) }
			}
			none := func(ch chan rec, what string) {
				t.Helper()
				select {
				case r := <-ch:
					t.Fatalf("%s: got %+v", what, r)
				case <-time.After(300 * time.Millisecond):
				}
			}
			one := func(ch chan rec, what string) rec {
				t.Helper()
				select {
				case r := <-ch:
					return r
				case <-ctx.Done():
					t.Fatalf("%s: nothing", what)
				}
				return rec{}
			}
			// Retain Handling 2: no retained message at subscribe
			ch, unsub := recv("opt/ret", packet.Subscription{RetainHandling: 2})
			none(ch, "retain handling 2")
			unsub()
			// Retain Handling 0: the retained message, with its retain flag
			ch, _ = recv("opt/ret", packet.Subscription{RetainHandling: 0})
			if r := one(ch, "retain handling 0"); r.payload != "kept" || !r.retain || len(r.subIDs) != 1 {
				t.Fatalf("retain handling 0: %+v", r)
			}
			// Retain Handling 1 on an existing subscription: nothing again
			c.Subscribe(ctx, func(*fennec.Message) {}, packet.Subscription{Filter: "opt/ret", QoS: 1, RetainHandling: 1})
			none(ch, "retain handling 1 on an existing subscription")
			// No Local
			ch, _ = recv("opt/local", packet.Subscription{NoLocal: true})
			c.Publish(ctx, &fennec.Message{Topic: "opt/local", QoS: 1, Payload: []byte("mine")})
			none(ch, "no local, own message")
			other.Publish(ctx, &fennec.Message{Topic: "opt/local", QoS: 1, Payload: []byte("theirs")})
			if r := one(ch, "no local, another's message"); r.payload != "theirs" {
				t.Fatalf("no local: %+v", r)
			}
			// Retain As Published: a live retained message keeps its flag; without it, it is cleared
			rap, _ := recv("opt/rap/#", packet.Subscription{RetainAsPublished: true})
			plain, _ := recv("opt/plain/#", packet.Subscription{})
			other.Publish(ctx, &fennec.Message{Topic: "opt/rap/x", QoS: 1, Retain: true, Payload: []byte("r")})
			other.Publish(ctx, &fennec.Message{Topic: "opt/plain/x", QoS: 1, Retain: true, Payload: []byte("r")})
			if r := one(rap, "retain as published"); !r.retain {
				t.Fatalf("retain as published: %+v", r)
			}
			if r := one(plain, "without retain as published"); r.retain {
				t.Fatalf("without retain as published the flag stayed: %+v", r)
			}
		})
	}
}
