package fennec_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
	"github.com/fennec-mqtt/fennec/packet"
)

// Failover across two bridged mosquitto brokers: the publisher has both (Servers), the
// subscriber is on the second, which bridges every topic to and from the first. The first is
// killed mid-stream; the publisher fails over to the second and every message reaches the
// subscriber (QoS 1: at least once).
func TestServersFailoverBridged(t *testing.T) {
	m1 := mosquittotest.Start(t, mosquittotest.Options{Quiet: true})
	m2 := mosquittotest.Start(t, mosquittotest.Options{Quiet: true, Config: []string{
		"connection to-m1", "address " + m1.Addr, "topic # both 1", "cleansession true", "restart_timeout 1", "try_private false",
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	got := map[int]bool{}
	sub, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + m2.Addr, ClientID: "watcher"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := sub.Subscribe(ctx, func(m *fennec.Message) {
		id, _ := strconv.Atoi(string(m.Payload))
		mu.Lock()
		got[id] = true
		mu.Unlock()
	}, packet.Subscription{Filter: "fo/#", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	cfg := fastReconnect("mqtt://"+m1.Addr, packet.V5)
	cfg.ClientID, cfg.Servers = "publisher", []string{"mqtt://" + m2.Addr}
	pub, err := fennec.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if pub.Server() != "mqtt://"+m1.Addr {
		t.Fatalf("connected to %s first", pub.Server())
	}
	// the bridge is up once a message published on m1 reaches the subscriber on m2
	for deadline := time.Now().Add(20 * time.Second); ; {
		pub.Publish(ctx, &fennec.Message{Topic: "fo/probe", QoS: 1, Payload: []byte("-1")})
		mu.Lock()
		up := got[-1]
		mu.Unlock()
		if up {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the bridge did not come up")
		}
		time.Sleep(100 * time.Millisecond)
	}
	const n = 400
	toks := make([]*fennec.Token, n)
	received := func(from, to int) bool {
		mu.Lock()
		defer mu.Unlock()
		for i := from; i < to; i++ {
			if !got[i] {
				return false
			}
		}
		return true
	}
	for i := range toks {
		if i == n/2 {
			// A message m1 acknowledged but had not bridged yet would die with it (the
			// brokers' limit, not the client's): kill once the first half has crossed.
			for _, tk := range toks[:i] {
				if err := tk.Wait(ctx); err != nil {
					t.Fatal(err)
				}
			}
			for !received(0, i) {
				time.Sleep(10 * time.Millisecond)
			}
			m1.Kill() // by its PID; the second half is published while the client fails over
		}
		toks[i] = pub.PublishAsync(ctx, &fennec.Message{Topic: fmt.Sprintf("fo/%d", i%5), QoS: 1, Payload: []byte(strconv.Itoa(i))})
	}
	for i, tk := range toks {
		if err := tk.Wait(ctx); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if pub.Server() != "mqtt://"+m2.Addr {
		t.Fatalf("after the kill the publisher is on %s", pub.Server())
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		missing := 0
		for i := range n {
			if !got[i] {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages never reached the subscriber", missing, n)
		}
	}
}
