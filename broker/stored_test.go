package broker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/packet"
)

// TestStoredMessagesBound: an offline session holds up to Options.MaxStoredMessages; below the
// bound nothing is lost, and each message past it is dropped for that session, logged and
// counted for the client (Broker.Dropped) — it used to be counted only in mochi's global
// InflightDropped, under a bound nobody could set through the broker's options.
func TestStoredMessagesBound(t *testing.T) {
	for _, tc := range []struct{ bound, sent int }{{100, 100}, {5, 8}} {
		t.Run(fmt.Sprintf("bound=%d/sent=%d", tc.bound, tc.sent), func(t *testing.T) {
			b, err := broker.New(broker.Options{MaxStoredMessages: tc.bound})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			url := "mqtt://" + b.Addr()
			var got atomic.Int64
			subCfg := fennec.Config{Server: url, ClientID: "limited", SessionExpiry: time.Hour,
				DefaultHandler: func(*fennec.Message) { got.Add(1) }}
			sc, err := fennec.Connect(ctx, subCfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sc.Subscribe(ctx, func(*fennec.Message) { got.Add(1) }, packet.Subscription{Filter: "stored/t", QoS: 1}); err != nil {
				t.Fatal(err)
			}
			if err := sc.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
			pc, err := fennec.Connect(ctx, fennec.Config{Server: url, CleanStart: true})
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			for i := range tc.sent {
				if err := pc.Publish(ctx, &fennec.Message{Topic: "stored/t", QoS: 1, Payload: []byte(fmt.Sprint(i))}); err != nil {
					t.Fatalf("publish %d: %v (the publisher must succeed: the broker took the message)", i, err)
				}
			}
			// mochi sends PUBACK before it routes the message: the count can trail the last Publish.
			wantDropped := uint64(max(0, tc.sent-tc.bound))
			for deadline := time.Now().Add(2 * time.Second); b.Dropped()["limited"] < wantDropped && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond)
			if d := b.Dropped()["limited"]; d != wantDropped {
				t.Fatalf("Dropped()[limited] = %d, want %d", d, wantDropped)
			}
			// the count is also published in $SYS, retained, for a monitoring client
			if wantDropped > 0 {
				mon, err := fennec.Connect(ctx, fennec.Config{Server: url})
				if err != nil {
					t.Fatal(err)
				}
				defer mon.Close()
				seen := make(chan string, 4)
				if _, err := mon.Subscribe(ctx, func(m *fennec.Message) { seen <- m.Topic + "=" + string(m.Payload) },
					packet.Subscription{Filter: "$SYS/broker/fennec/dropped/#", QoS: 0}); err != nil {
					t.Fatal(err)
				}
				want := fmt.Sprintf("%slimited=%d", broker.DroppedTopic, wantDropped)
				for got := ""; got != want; {
					select {
					case got = <-seen:
					case <-time.After(3 * time.Second):
						t.Fatalf("no %s in $SYS (last %q)", want, got)
					}
				}
			}
			sc2, err := fennec.Connect(ctx, subCfg)
			if err != nil {
				t.Fatal(err)
			}
			defer sc2.Close()
			want := int64(min(tc.sent, tc.bound))
			for got.Load() < want && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond)
			if got.Load() != want {
				t.Fatalf("received %d stored messages, want %d", got.Load(), want)
			}
		})
	}
}
