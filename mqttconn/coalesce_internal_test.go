package mqttconn

import (
	"net"
	"testing"
	"time"
)

// coalesceHarness is a Conn whose coalescer sets its threshold on a recorder instead of a
// socket, fed with synthetic reads.
type coalesceHarness struct {
	c     *Conn
	other net.Conn // the pipe's other end
	set   []int    // every threshold applied, in order
	now   time.Time
}

func newCoalesceHarness(t *testing.T) *coalesceHarness {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	h := &coalesceHarness{c: &Conn{nc: a}, other: b, now: time.Unix(1000, 0)}
	h.c.co.apply = func(n int) bool { h.set = append(h.set, n); return true }
	return h
}

// reads accounts n reads of size bytes, gap apart.
func (h *coalesceHarness) reads(n, size int, gap time.Duration) {
	for range n {
		h.c.co.account(h.c, size, h.now)
		h.now = h.now.Add(gap)
	}
}

// TestCoalesceDecisions: the threshold follows the stream. Dense small reads (a reader that
// keeps up with a fast stream, woken for every packet) turn it on at what arrives in
// coalesceSpan; sparse reads, slow streams and reads that are already large leave it off; a
// wait that timed out turns it off for 100 ms, then 200 ms after the next one.
func TestCoalesceDecisions(t *testing.T) {
	t.Run("dense small reads", func(t *testing.T) {
		h := newCoalesceHarness(t)
		h.reads(coalesceWindow+1, 100, 10*time.Microsecond) // 10 MB/s
		// 64 × 100 B in 630 µs: 10.16 MB/s × 250 µs = 2,539 B
		if h.c.co.lowat < 2400 || h.c.co.lowat > 2700 || len(h.set) != 1 {
			t.Fatalf("threshold %d (applied %v), want about 2,540 once", h.c.co.lowat, h.set)
		}
		if h.c.co.engaged != 1 {
			t.Fatalf("engaged %d, want 1", h.c.co.engaged)
		}
	})
	t.Run("clamped at 4 KiB", func(t *testing.T) {
		h := newCoalesceHarness(t)
		h.reads(coalesceWindow+1, 1000, 10*time.Microsecond) // 100 MB/s
		if h.c.co.lowat != coalesceMax {
			t.Fatalf("threshold %d, want %d", h.c.co.lowat, coalesceMax)
		}
	})
	t.Run("sparse reads", func(t *testing.T) {
		h := newCoalesceHarness(t)
		h.reads(4*coalesceWindow, 1000, 100*time.Microsecond) // a read per 100 µs
		if len(h.set) != 0 {
			t.Fatalf("a stream of one read per 100 µs set thresholds %v", h.set)
		}
	})
	t.Run("slow stream", func(t *testing.T) {
		h := newCoalesceHarness(t)
		h.reads(4*coalesceWindow, 4, 10*time.Microsecond) // acknowledgements: 0.4 MB/s
		if len(h.set) != 0 {
			t.Fatalf("a stream worth 100 B per 250 µs set thresholds %v", h.set)
		}
	})
	t.Run("acknowledgements owed", func(t *testing.T) {
		// A QoS 1 publisher over TLS with 100 messages in flight: its reads are PUBACK records
		// of 26 bytes, 10 µs apart (2.6 MB/s, 650 B per 250 µs). It coalesces, but waits for
		// no more than 2 bytes per reply owed: 200.
		h := newCoalesceHarness(t)
		h.c.awaiting.Store(100)
		h.reads(coalesceWindow+1, 26, 10*time.Microsecond)
		if h.c.co.lowat != 200 || len(h.set) != 1 || !h.c.co.forAcks {
			t.Fatalf("threshold %d (applied %v), want 200, bounded by the 100 replies owed", h.c.co.lowat, h.set)
		}
		h.c.awaiting.Store(0) // the same stream with nothing owed: a subscriber's, unbounded
		h.reads(coalesceWindow, 26, 10*time.Microsecond)
		if h.c.co.lowat < 600 || h.c.co.forAcks {
			t.Fatalf("threshold %d (applied %v), want about 650 once nothing is owed", h.c.co.lowat, h.set)
		}
	})
	t.Run("dense PUBACKs over TCP", func(t *testing.T) {
		// 4-byte PUBACKs 10 µs apart with 1,000 owed: 100 B per 250 µs, too little for a data
		// stream's threshold, worth one for acknowledgements (a wake-up per 25 instead of per one).
		h := newCoalesceHarness(t)
		h.c.awaiting.Store(1000)
		h.reads(coalesceWindow+1, 4, 10*time.Microsecond)
		if h.c.co.lowat < 90 || h.c.co.lowat > 110 {
			t.Fatalf("threshold %d (applied %v), want about 100", h.c.co.lowat, h.set)
		}
	})
	t.Run("small window", func(t *testing.T) {
		// Under a Receive Maximum of 20 (mosquitto's) the publisher does not coalesce.
		h := newCoalesceHarness(t)
		h.c.awaiting.Store(20)
		h.reads(4*coalesceWindow, 26, 10*time.Microsecond)
		if len(h.set) != 0 {
			t.Fatalf("a connection owed 20 replies set thresholds %v", h.set)
		}
	})
	t.Run("fewer owed than the threshold waits for", func(t *testing.T) {
		// Set while 100 replies were owed (200 bytes); 40 are left, 80 bytes at least: the read
		// must not wait for 200 bytes that may never come (it would sit out the deadline, and
		// count a miss). The threshold is dropped before the read.
		h := newCoalesceHarness(t)
		h.c.awaiting.Store(100)
		h.reads(coalesceWindow+1, 26, 10*time.Microsecond)
		if h.c.co.lowat != 200 {
			t.Fatalf("threshold %d, want 200", h.c.co.lowat)
		}
		h.c.awaiting.Store(40)
		go func() { h.other.Write([]byte{0x40, 2, 0, 1}) }()
		buf := make([]byte, 16)
		if n, err := h.c.readCoalesced(buf, h.now); err != nil || n != 4 {
			t.Fatalf("read %d, %v", n, err)
		}
		if h.c.co.lowat != 0 || h.set[len(h.set)-1] != 1 || h.c.co.misses != 0 {
			t.Fatalf("threshold %d (applied %v, misses %d), want dropped before the read", h.c.co.lowat, h.set, h.c.co.misses)
		}
	})
	t.Run("reads already large", func(t *testing.T) {
		h := newCoalesceHarness(t)
		h.reads(4*coalesceWindow, 32<<10, 40*time.Microsecond) // a reader that is behind
		if len(h.set) != 0 {
			t.Fatalf("reads of 32 KiB set thresholds %v", h.set)
		}
	})
	t.Run("steady stream sets it once", func(t *testing.T) {
		h := newCoalesceHarness(t)
		for i := range 20 {
			h.reads(coalesceWindow, 100+i%3, 10*time.Microsecond)
		}
		if len(h.set) != 1 {
			t.Fatalf("thresholds applied %v, want one (changes under a quarter are not applied)", h.set)
		}
	})
	t.Run("misses back off", func(t *testing.T) {
		h := newCoalesceHarness(t)
		h.reads(coalesceWindow+1, 100, 10*time.Microsecond)
		if h.c.co.lowat == 0 {
			t.Fatal("not engaged")
		}
		h.c.co.miss(h.c, h.now)
		if h.c.co.lowat != 0 || h.set[len(h.set)-1] != 1 {
			t.Fatalf("after a miss: threshold %d, applied %v; want off (1 byte)", h.c.co.lowat, h.set)
		}
		h.reads(coalesceWindow*2, 100, 10*time.Microsecond) // 1.3 ms of dense reads
		if h.c.co.lowat != 0 {
			t.Fatal("engaged again within 100 ms of a miss")
		}
		h.now = h.now.Add(100 * time.Millisecond)
		h.reads(coalesceWindow*2, 100, 10*time.Microsecond) // the first window spans the pause
		if h.c.co.lowat == 0 {
			t.Fatal("not engaged again 100 ms after a miss")
		}
		h.c.co.miss(h.c, h.now)
		h.now = h.now.Add(150 * time.Millisecond)
		h.reads(coalesceWindow*2, 100, 10*time.Microsecond)
		if h.c.co.lowat != 0 {
			t.Fatal("engaged again 150 ms after a second miss: the pause did not double")
		}
		if h.c.co.misses != 2 {
			t.Fatalf("misses %d, want 2", h.c.co.misses)
		}
	})
	t.Run("socket refuses", func(t *testing.T) {
		h := newCoalesceHarness(t)
		h.c.co.apply = func(int) bool { return false }
		h.reads(4*coalesceWindow, 100, 10*time.Microsecond)
		if !h.c.co.disabled || h.c.co.lowat != 0 {
			t.Fatalf("disabled %v, threshold %d after the socket refused", h.c.co.disabled, h.c.co.lowat)
		}
	})
}
