package fennec_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
	"github.com/fennec-mqtt/fennec/packet"
)

// Shared subscriptions load-balance: three consumers of $share/workers/jobs/# get 10,000 QoS 1
// messages between them, each message exactly once, every consumer some, against mosquitto and
// the embedded broker.
func TestSharedSubscriptionLoadBalancing(t *testing.T) {
	const n = 10000
	for name, addr := range map[string]func(*testing.T) string{
		"mosquitto": func(t *testing.T) string { return mosquittotest.Start(t, mosquittotest.Options{Quiet: true}).Addr },
		"embedded": func(t *testing.T) string {
			return brokertest.Start(t, brokertest.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).TCPAddr
		},
	} {
		t.Run(name, func(t *testing.T) {
			url := "mqtt://" + addr(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var mu sync.Mutex
			seen := make(map[int]int, n)
			per := make([]int, 3)
			all := make(chan struct{})
			for i := range per {
				c, err := fennec.Connect(ctx, fennec.Config{Server: url, ClientID: fmt.Sprintf("worker-%d", i)})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if _, err := c.Subscribe(ctx, func(m *fennec.Message) {
					id, _ := strconv.Atoi(string(m.Payload))
					mu.Lock()
					seen[id]++
					per[i]++
					if len(seen) == n {
						select {
						case <-all:
						default:
							close(all)
						}
					}
					mu.Unlock()
				}, packet.Subscription{Filter: "$share/workers/jobs/#", QoS: 1}); err != nil {
					t.Fatal(err)
				}
			}
			pub, err := fennec.Connect(ctx, fennec.Config{Server: url})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			toks := make([]*fennec.Token, n)
			for i := range toks {
				toks[i] = pub.PublishAsync(ctx, &fennec.Message{Topic: fmt.Sprintf("jobs/%d", i%7), QoS: 1, Payload: []byte(strconv.Itoa(i))})
			}
			for _, tk := range toks {
				if err := tk.Wait(ctx); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-all:
			case <-ctx.Done():
				mu.Lock()
				t.Fatalf("%d of %d messages delivered", len(seen), n)
			}
			time.Sleep(200 * time.Millisecond) // a duplicate would arrive now
			mu.Lock()
			defer mu.Unlock()
			for id, k := range seen {
				if k != 1 {
					t.Fatalf("message %d delivered %d times", id, k)
				}
			}
			for i, k := range per {
				if k == 0 {
					t.Fatalf("consumer %d got nothing: %v", i, per)
				}
			}
			t.Logf("%s: %d messages over 3 consumers: %v", name, n, per)
		})
	}
}
