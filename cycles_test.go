package fennec_test

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
)

// TestConnectCyclesReturnToBaseline: 1,000 cycles of connect, subscribe, publish QoS 1, receive,
// disconnect leave the goroutine count where it started and the live heap within 256 KiB of it
// (measured: 0.57 MiB before, 0.59 after 1,000 and 0.62 after 4,000; FENNEC_CYCLES sets the count).
func TestConnectCyclesReturnToBaseline(t *testing.T) {
	leakCheck(t)
	// Quiet: the test would otherwise keep a log line per connection in its own heap.
	b := mosquittotest.Start(t, mosquittotest.Options{Quiet: true})
	ctx := testCtx(t)
	cycle := func(i int) {
		c, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.Addr, ClientID: fmt.Sprintf("cycle-%d", i%8), CleanStart: true})
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan struct{}, 1)
		topic := fmt.Sprintf("cycle/%d", i%8)
		if _, err := c.Subscribe(ctx, func(*fennec.Message) { got <- struct{}{} }, sub(topic, 1)); err != nil {
			t.Fatal(err)
		}
		if err := c.Publish(ctx, &fennec.Message{Topic: topic, QoS: 1, Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatal("message not received")
		}
		if err := c.Disconnect(ctx); err != nil {
			t.Fatal(err)
		}
		<-c.Done()
	}
	live := func() (int, uint64) {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), ms.HeapAlloc
	}
	for i := range 20 { // warm-up: pools, timers, the broker's first sessions
		cycle(i)
	}
	time.Sleep(50 * time.Millisecond)
	g0, h0 := live()

	n := 1000
	if s := os.Getenv("FENNEC_CYCLES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	start := time.Now()
	for i := range n {
		cycle(i)
	}
	d := time.Since(start)
	var g1 int
	var h1 uint64
	for deadline := time.Now().Add(5 * time.Second); ; {
		g1, h1 = live()
		if g1 <= g0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%d cycles in %v: goroutines %d → %d, live heap %.2f → %.2f MiB", n, d.Round(time.Millisecond), g0, g1,
		float64(h0)/(1<<20), float64(h1)/(1<<20))
	if g1 > g0 {
		t.Fatalf("goroutines %d after %d cycles, %d before", g1, n, g0)
	}
	if h1 > h0+256<<10 {
		t.Fatalf("live heap %.2f MiB after %d cycles, %.2f MiB before", float64(h1)/(1<<20), n, float64(h0)/(1<<20))
	}
}
