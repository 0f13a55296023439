package broker_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/internal/faultproxy"
	"github.com/fennec-mqtt/fennec/packet"
)

// soakFor is how long TestBrokerSoak runs: short in make test, -broker-soak=10m for the figures.
var soakFor = flag.Duration("broker-soak", 5*time.Second, "duration of TestBrokerSoak")

// TestBrokerSoak: many clients on the embedded broker at once — publishers at QoS 0, 1 and 2,
// persistent-session subscribers of both versions behind a seeded fault proxy that drops, resets,
// stalls and cuts their connections, a hostile client that sends garbage and half packets — for
// soakFor. Accounting by sequence number of every QoS 1 and 2 message a publisher got its
// acknowledgement for, at every subscriber. Asserted: the broker keeps making progress (no
// deadlock: a watchdog fails the test when nothing arrives for 20 s), no QoS 2 message reaches a
// QoS 2 subscriber twice, and the process's heap stays under 256 MiB. Counted and logged, not
// yet asserted: messages that never arrive (the session takeover race, see docs/broker.md).
func TestBrokerSoak(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithTimeout(context.Background(), *soakFor+3*time.Minute)
	defer cancel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("fault seed %d", seed)
	proxy, err := faultproxy.Start(b.TCPAddr, seed, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()

	const nPub = 5
	type sub struct {
		name string
		qos  packet.QoS
		mu   sync.Mutex
		seen [nPub][]uint8 // per publisher, deliveries of each sequence number (compact: the test's own memory stays small)
		c    *fennec.Client
	}
	var subs []*sub
	var progress atomic.Int64
	for i, cfg := range []struct {
		v   packet.Version
		qos packet.QoS
	}{{packet.V5, 1}, {packet.V5, 2}, {packet.V311, 1}, {packet.V311, 2}, {packet.V5, 1}, {packet.V311, 2}} {
		s := &sub{name: fmt.Sprintf("soak-sub-%d-v%d-q%d", i, cfg.v, cfg.qos), qos: cfg.qos}
		c, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + proxy.Addr, Version: cfg.v, ClientID: s.name,
			SessionExpiry: time.Hour, KeepAlive: 2 * time.Second, ConnectRetry: true,
			Backoff: func(int) time.Duration { return 50 * time.Millisecond }})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s.c = c
		for {
			sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := c.Subscribe(sctx, func(m *fennec.Message) {
				var p, q, i int
				if _, err := fmt.Sscanf(string(m.Payload), "%d-%d-%d", &p, &q, &i); err != nil || p < 0 || p >= nPub {
					t.Errorf("unexpected payload %q", m.Payload)
					return
				}
				s.mu.Lock()
				for len(s.seen[p]) <= i {
					s.seen[p] = append(s.seen[p], 0)
				}
				if s.seen[p][i] < 255 {
					s.seen[p][i]++
				}
				s.mu.Unlock()
				progress.Add(1)
			}, packet.Subscription{Filter: "soak/#", QoS: cfg.qos})
			scancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatal(err)
			}
		}
		subs = append(subs, s)
	}

	// Publishers connect directly: what they were acknowledged is what the broker owes.
	var accMu sync.Mutex
	var accepted [nPub]int // messages acknowledged per publisher: sequence numbers 0..n-1
	pubQoS := []packet.QoS{0, 1, 2, 1, 2}
	var wg sync.WaitGroup
	end := time.Now().Add(*soakFor)
	for p, qos := range pubQoS {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pc, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, CleanStart: true})
			if err != nil {
				t.Error(err)
				return
			}
			defer pc.Close()
			for i := 0; time.Now().Before(end); i++ {
				payload := fmt.Sprintf("%d-%d-%d", p, qos, i)
				if err := pc.Publish(ctx, &fennec.Message{Topic: fmt.Sprintf("soak/%d", p), QoS: qos, Payload: []byte(payload)}); err != nil {
					t.Errorf("publisher %d: %v", p, err)
					return
				}
				accMu.Lock()
				accepted[p] = i + 1
				accMu.Unlock()
				time.Sleep(time.Millisecond) // about 1,000 messages a second per publisher
			}
		}()
	}
	// A hostile client: garbage, a half packet, a CONNECT claiming 100 MB, in a loop.
	wg.Add(1)
	go func() {
		defer wg.Done()
		garbage := [][]byte{{0xff, 0xff, 0xff, 0xff, 0xff}, {0x10, 0xff, 0xff, 0xff, 0x7f}, {0x10, 0x10, 0x00, 0x04, 'M', 'Q'}, []byte("GET / HTTP/1.1\r\n\r\n")}
		for i := 0; time.Now().Before(end); i++ {
			c, err := net.Dial("tcp", b.TCPAddr)
			if err == nil {
				c.Write(garbage[i%len(garbage)])
				c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				c.Read(make([]byte, 16))
				c.Close()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	// Faults on the subscribers' links, and the watchdog and heap sampler.
	var maxHeap uint64
	faults := 0
	last, lastChange := progress.Load(), time.Now()
	for time.Now().Before(end) {
		time.Sleep(time.Duration(200+proxy.Intn(800)) * time.Millisecond)
		proxy.Random(500*time.Millisecond, faultproxy.Drop, faultproxy.Reset, faultproxy.Stall, faultproxy.Truncate)
		faults++
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		maxHeap = max(maxHeap, ms.HeapInuse)
		if n := progress.Load(); n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) > 20*time.Second {
			t.Fatalf("nothing delivered for 20 s after %d messages: the broker hung", n)
		}
	}
	wg.Wait()
	// Drain: every accepted message reaches every subscriber of its QoS or higher... each
	// subscriber receives each message at min(publish QoS, its QoS) ≥ 1: none may be missing.
	deadline := time.Now().Add(2 * time.Minute)
	perSub := map[string]int{}
	missing := func() (int, int) {
		m, d := 0, 0
		clear(perSub)
		accMu.Lock()
		defer accMu.Unlock()
		for _, s := range subs {
			s.mu.Lock()
			for p, n := range accepted {
				if pubQoS[p] == 0 {
					continue // QoS 0 may be lost
				}
				for i := 0; i < n; i++ {
					k := 0
					if i < len(s.seen[p]) {
						k = int(s.seen[p][i])
					}
					if k == 0 {
						m++
						perSub[s.name]++
					}
					if k > 1 && pubQoS[p] == 2 && s.qos == 2 {
						d += k - 1
					}
				}
			}
			s.mu.Unlock()
		}
		return m, d
	}
	var lost, dups int
	prevLost, since := -1, time.Now()
	for {
		lost, dups = missing()
		if lost != prevLost {
			prevLost, since = lost, time.Now()
		}
		if lost == 0 || time.Now().After(deadline) || time.Since(since) > 5*time.Second {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	accMu.Lock()
	n1, n2 := 0, 0
	for p, n := range accepted {
		switch pubQoS[p] {
		case 1:
			n1 += n
		case 2:
			n2 += n
		}
	}
	accMu.Unlock()
	conns := 0
	for _, s := range subs {
		conns += int(s.c.Stats().Connections)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "soak %v: %d QoS 1 and %d QoS 2 messages acknowledged to publishers, %d subscribers, %d faults (%s), %d subscriber connections; lost %d, QoS 2 duplicates %d; max heap in use %.1f MiB",
		*soakFor, n1, n2, len(subs), faults, proxy.Counts(), conns, lost, dups, float64(maxHeap)/(1<<20))
	if lost > 0 {
		fmt.Fprintf(&sb, " (by subscriber: %v)", perSub)
	}
	t.Log(sb.String())
	if dups > 0 {
		t.Fatalf("%d QoS 2 messages delivered twice", dups)
	}
	if lost > 0 {
		t.Fatalf("%d acknowledged messages never reached a subscriber", lost)
	}
	if maxHeap > 256<<20 {
		t.Fatalf("heap in use reached %.1f MiB", float64(maxHeap)/(1<<20))
	}
}
