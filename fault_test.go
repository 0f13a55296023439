package fennec_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/internal/faultproxy"
	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
	"github.com/fennec-mqtt/fennec/packet"
)

// soak turns the short fault suites of `make test` into the long ones of `make soak`.
var soak = flag.Bool("soak", false, "run the long fault and soak suites (make soak)")

// faultSeed returns the seed of this run's faults: FENNEC_FAULT_SEED replays a run.
func faultSeed(t *testing.T) uint64 {
	if s := os.Getenv("FENNEC_FAULT_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FENNEC_FAULT_SEED: %v", err)
		}
		return n
	}
	n := uint64(time.Now().UnixNano())
	return n
}

// account is one row of the accounting table.
type account struct {
	name                                string
	published, accepted, failed, faults int
	received, lost, dup, connections    int
	resentAfterRelease                  uint64
	queueFull                           int // ErrQueueFull answers, retried after AwaitConnection
	d                                   time.Duration
}

func (a account) String() string {
	return fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %.1f s |", a.name, a.published, a.queueFull, a.accepted,
		a.failed, a.faults, a.connections, a.received, a.lost, a.dup, a.resentAfterRelease, a.d.Seconds())
}

const accountHeader = "| run | published | queue full, retried | accepted | failed | faults | connections (both clients) | received | lost | QoS 2 duplicates at the application | counted resent after PUBREL | time |"

// runAccounting publishes n sequence-numbered messages through one fault proxy to a subscriber
// behind another, both with persistent sessions, while faults are injected every 20–120 ms
// (faults in all, spread over both links); mid, when set, runs once halfway (a broker restart).
// It waits until every accepted message arrived or nothing arrived for 10 s, and accounts.
func runAccounting(t *testing.T, b *mosquittotest.Broker, name string, qos int, n, faults int, kinds []faultproxy.Fault, mid func()) account {
	seed := faultSeed(t)
	t.Logf("%s: FENNEC_FAULT_SEED=%d", name, seed)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	pp, err := faultproxy.Start(b.Addr, seed, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer pp.Close()
	sp, err := faultproxy.Start(b.Addr, seed+1, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	backoff := func(int) time.Duration { return 20 * time.Millisecond }
	topic := "acct/" + name
	var mu sync.Mutex
	seen := make([]int, n)
	subCfg := fennec.Config{Server: "mqtt://" + sp.Addr, ClientID: "acct-sub-" + name, SessionExpiry: time.Hour,
		KeepAlive: time.Second, Backoff: backoff, ConnectRetry: true}
	sc, err := fennec.Connect(ctx, subCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	for {
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := sc.Subscribe(sctx, func(m *fennec.Message) {
			i, err := strconv.Atoi(string(m.Payload))
			if err != nil || i < 0 || i >= n {
				t.Errorf("unexpected payload %q", m.Payload)
				return
			}
			mu.Lock()
			seen[i]++
			mu.Unlock()
		}, sub(topic, packet.QoS(qos)))
		scancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
	}
	pc, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + pp.Addr, ClientID: "acct-pub-" + name,
		SessionExpiry: time.Hour, KeepAlive: time.Second, Backoff: backoff, ConnectRetry: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()

	stop := make(chan struct{})
	var injected atomic.Int64
	var fwg sync.WaitGroup
	fwg.Add(1)
	go func() {
		defer fwg.Done()
		for injected.Load() < int64(faults) {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(20+pp.Intn(100)) * time.Millisecond):
			}
			p := pp
			if pp.Intn(2) == 1 {
				p = sp
			}
			p.Random(300*time.Millisecond, kinds...)
			injected.Add(1)
		}
	}()
	toks := make([]*fennec.Token, n)
	acc := account{name: name, published: n}
	// Paced so that the faults (70 ms apart on average) fall across the whole stream.
	pace := time.Duration(faults) * 80 * time.Millisecond / time.Duration(n)
	pubStart := time.Now()
	for i := range toks {
		if ahead := time.Duration(i)*pace - time.Since(pubStart); ahead > time.Millisecond {
			time.Sleep(ahead)
		}
		if mid != nil && i == n/2 {
			mid()
		}
		for {
			// An application that must not drop a message waits for the connection when the
			// offline queue is full (ErrQueueFull: the queue's stated policy), then retries.
			toks[i] = pc.PublishAsync(ctx, &fennec.Message{Topic: topic, QoS: packet.QoS(qos), Payload: []byte(strconv.Itoa(i))})
			if !errors.Is(toks[i].Err(), fennec.ErrQueueFull) {
				break
			}
			acc.queueFull++
			if err := pc.AwaitConnection(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	fwg.Wait() // every fault injected, the last ones while the stream drains
	ok := make([]bool, n)
	for i, tok := range toks {
		if err := tok.Wait(ctx); err != nil {
			acc.failed++
			if acc.failed <= 3 {
				t.Logf("message %d: %v", i, err)
			}
			continue
		}
		ok[i] = true
		acc.accepted++
	}
	close(stop)
	acc.faults = int(injected.Load())
	// Wait for the subscriber: every accepted message, or 10 s without progress.
	last, lastChange := -1, time.Now()
	for {
		mu.Lock()
		got := 0
		for i := range seen {
			if ok[i] && seen[i] > 0 {
				got++
			}
		}
		mu.Unlock()
		if got != last {
			last, lastChange = got, time.Now()
		}
		if got == acc.accepted || time.Since(lastChange) > 10*time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // late duplicates
	mu.Lock()
	for i, k := range seen {
		if k > 0 {
			acc.received++
		}
		if ok[i] && k == 0 {
			acc.lost++
		}
		if k > 1 {
			acc.dup += k - 1
		}
	}
	mu.Unlock()
	st := sc.Stats()
	acc.connections = int(st.Connections + pc.Stats().Connections)
	acc.resentAfterRelease = st.QoS2ResentAfterRelease
	acc.d = time.Since(start)
	t.Logf("faults: publisher link: %s; subscriber link: %s", pp.Counts(), sp.Counts())
	return acc
}

// TestFaultAccounting: QoS 1 and QoS 2 streams through a seeded fault proxy on both the
// publisher's and the subscriber's link — drops, resets, stalls, delays, packets cut in half,
// half-open links only keepalive can detect — with exact accounting by sequence number: QoS 1
// loses nothing, QoS 2 loses nothing and delivers nothing twice, and no Publish fails. A third
// run kills mosquitto (persistence with a snapshot per change) with SIGKILL halfway and restarts
// it; there mosquitto's own persistence can lose what it acknowledged last, which is logged, not
// asserted. make test runs 2,000 messages and 10 faults per stream; make soak 20,000 and 50.
func TestFaultAccounting(t *testing.T) {
	n, faults := 2000, 10
	if *soak {
		n, faults = 20000, 50
	}
	var rows []account
	for _, qos := range []int{1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			b := startMosquitto(t, "max_queued_messages 0")
			a := runAccounting(t, b, fmt.Sprintf("qos%d", qos), qos, n, faults, nil, nil)
			rows = append(rows, a)
			if a.failed > 0 || a.lost > 0 || qos == 2 && a.dup > 0 {
				t.Errorf("%v", a)
			}
		})
	}
	t.Run("broker-sigkill", func(t *testing.T) {
		b := startMosquitto(t, "max_queued_messages 0", "persistence true", "persistence_file mosquitto.db",
			"autosave_interval 1", "autosave_on_changes true")
		a := runAccounting(t, b, "broker-sigkill", 1, n/2, faults/2, []faultproxy.Fault{faultproxy.Drop, faultproxy.Stall}, func() {
			b.Kill()
			if err := b.Restart(); err != nil {
				t.Error(err)
			}
		})
		rows = append(rows, a)
		if a.failed > 0 {
			t.Errorf("%v", a)
		}
		// Not asserted: mosquitto's snapshot per change is taken by its main loop, after the
		// PUBACK can have gone out, so a SIGKILL can still lose what it acknowledged last (about
		// 1 run in 6 lost a couple of hundred here). The client's part — nothing refused, every
		// message the broker kept delivered — is what the other runs and TestCrashDurableStore
		// assert.
		if a.lost > 0 {
			t.Logf("mosquitto lost %d acknowledged messages across its SIGKILL (its persistence window)", a.lost)
		}
	})
	t.Log("accounting (QoS 1 unless named qos2):\n" + accountHeader + "\n|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		t.Log(r.String())
	}
}

// TestSlowHandler: a handler 100 times slower than the publisher (10 ms per QoS 1 message against
// one published every 100 µs) for a while. The client's live heap stays under a stated bound
// (the subscriber holds at most its Receive Maximum, 256, unacknowledged messages; the
// publisher its window and offline queue), the subscriber's connection survives on a 1 s
// keepalive (one connection), and handling goes on at the handler's pace. mosquitto queues the
// backlog, up to its max_queued_messages. make test runs 5 s, make soak a minute.
func TestSlowHandler(t *testing.T) {
	d := 5 * time.Second
	if *soak {
		d = time.Minute
	}
	b := startMosquitto(t, "max_queued_messages 20000")
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	var got atomic.Int64
	sc := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, KeepAlive: time.Second, CleanStart: true})
	if _, err := sc.Subscribe(ctx, func(m *fennec.Message) {
		time.Sleep(10 * time.Millisecond)
		got.Add(1)
	}, sub("slow/t", 1)); err != nil {
		t.Fatal(err)
	}
	pc := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, CleanStart: true, KeepAlive: time.Second})
	payload := make([]byte, 64)
	var maxHeap uint64
	var ms runtime.MemStats
	sent := 0
	start := time.Now()
	nextSample := start
	for time.Since(start) < d {
		for range 10 { // 10 per millisecond: one every 100 µs
			if err := pc.PublishAsync(ctx, &fennec.Message{Topic: "slow/t", QoS: 1, Payload: payload}).Err(); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		time.Sleep(time.Millisecond)
		if time.Now().After(nextSample) {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			maxHeap = max(maxHeap, ms.HeapAlloc)
			nextSample = time.Now().Add(250 * time.Millisecond)
		}
	}
	handled := got.Load()
	conns := sc.Stats().Connections
	t.Logf("%d published in %v, %d handled (%.0f/s); max live heap %.1f MiB; subscriber connections %d",
		sent, d, handled, float64(handled)/d.Seconds(), float64(maxHeap)/(1<<20), conns)
	if conns != 1 {
		t.Fatalf("the slow subscriber reconnected (%d connections): keepalive did not survive", conns)
	}
	// At the handler's pace, 100 per second, less scheduling slack.
	if want := int64(d.Seconds() * 50); handled < want {
		t.Fatalf("%d handled in %v, want at least %d", handled, d, want)
	}
	if bound := uint64(32 << 20); maxHeap > bound {
		t.Fatalf("live heap reached %.1f MiB, bound %d MiB", float64(maxHeap)/(1<<20), bound>>20)
	}
}
