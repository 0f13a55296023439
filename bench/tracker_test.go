package bench

import (
	"bytes"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func payload(run, pub uint32, seq uint64, sent time.Time) []byte {
	p := make([]byte, HeaderSize+4)
	Header{Run: run, Publisher: pub, Seq: seq, Sent: sent}.Put(p)
	return p
}

func TestHeaderRoundTrip(t *testing.T) {
	now := time.Unix(1700000000, 123456789)
	h := Header{Run: 0xdeadbeef, Publisher: 7, Seq: 1 << 40, Sent: now}
	got, err := ParseHeader(payload(h.Run, h.Publisher, h.Seq, h.Sent))
	if err != nil || got.Run != h.Run || got.Publisher != h.Publisher || got.Seq != h.Seq || !got.Sent.Equal(now) {
		t.Fatalf("got %+v, %v; want %+v", got, err, h)
	}
	for _, p := range [][]byte{nil, []byte("hello"), bytes.Repeat([]byte{0}, HeaderSize)} {
		if _, err := ParseHeader(p); err != ErrNoHeader {
			t.Fatalf("ParseHeader(%q) = %v, want ErrNoHeader", p, err)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(payload(1, 2, 3, time.Unix(0, 0)))
	f.Add([]byte("FNB1"))
	f.Fuzz(func(t *testing.T, p []byte) {
		h, err := ParseHeader(p)
		if err != nil {
			return
		}
		q := make([]byte, HeaderSize)
		h.Put(q)
		if !bytes.Equal(q, p[:HeaderSize]) {
			t.Fatalf("re-encoded %x, read %x", q, p[:HeaderSize])
		}
	})
}

func TestTrackerCounts(t *testing.T) {
	var tr Tracker
	base := time.Now()
	// publisher 1 sends 0..9; 3 is lost, 5 arrives after 6, 7 arrives twice.
	for _, seq := range []uint64{0, 1, 2, 4, 6, 5, 7, 7, 8, 9} {
		tr.Observe(payload(9, 1, seq, base), base.Add(time.Duration(seq+1)*time.Millisecond))
	}
	tr.Observe([]byte("not a benchmark message"), base)
	st := tr.Stats()
	want := TrackerStats{Received: 10, Unique: 9, Duplicates: 1, Reordered: 1, Gaps: 1, NoHeader: 1}
	if st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	if lost := tr.Lost(9, map[uint32]uint64{1: 10, 2: 5}); lost != 1+5 {
		t.Fatalf("lost %d, want 6 (seq 3 of publisher 1, all 5 of publisher 2)", lost)
	}
	if lost := tr.Lost(8, map[uint32]uint64{1: 10}); lost != 10 {
		t.Fatalf("another run's publisher 1: lost %d, want 10", lost)
	}
	h := tr.Latency()
	if h.TotalCount() != 9 || h.Min() < 1000 || h.Max() > 10100 {
		t.Fatalf("latency: %d values, %d..%d µs; want 9 in 1..10 ms", h.TotalCount(), h.Min(), h.Max())
	}
}

// A send time after the receive time (two machines' clocks) records no latency: none is
// negative, and the skew is counted.
func TestTrackerClockSkew(t *testing.T) {
	var tr Tracker
	now := time.Now()
	tr.Observe(payload(1, 0, 0, now.Add(time.Second)), now)
	tr.Observe(payload(1, 0, 1, now.Add(-time.Millisecond)), now)
	st := tr.Stats()
	if st.ClockSkew != 1 || st.Unique != 2 {
		t.Fatalf("stats %+v", st)
	}
	if h := tr.Latency(); h.TotalCount() != 1 || h.Min() < 0 {
		t.Fatalf("latency %d values, min %d", h.TotalCount(), h.Min())
	}
}

// Hostile sequence numbers and publisher IDs cost bounded memory and time.
func TestTrackerBounds(t *testing.T) {
	var tr Tracker
	now := time.Now()
	tr.Observe(payload(1, 0, 0, now), now)
	tr.Observe(payload(1, 0, 1<<62, now), now) // a jump over 2^62 numbers
	tr.Observe(payload(1, 0, 5, now), now)     // one of the remembered gaps
	tr.Observe(payload(1, 0, 1<<61, now), now) // a forgotten one: cannot be told from a duplicate
	st := tr.Stats()
	if st.Received != 4 || st.Unique != 4 || st.Reordered != 2 || st.Gaps != 1<<62-1-2 || st.Forgotten != 1<<62-1-MaxGaps-1 {
		t.Fatalf("stats %+v", st)
	}
	if n := len(tr.streams[streamKey{1, 0}].gaps); n != MaxGaps-1 {
		t.Fatalf("%d gaps remembered, want %d", n, MaxGaps-1)
	}
	for p := range uint32(MaxStreams + 10) {
		tr.Observe(payload(2, p, 0, now), now)
	}
	if st := tr.Stats(); st.Untracked != 11 || len(tr.streams) != MaxStreams {
		t.Fatalf("untracked %d, %d streams", st.Untracked, len(tr.streams))
	}
}

// TestTrackerModel compares a Tracker with a direct count on random deliveries: losses,
// duplicates and reordering of several publishers' streams. Sent = unique + lost always.
func TestTrackerModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pubs := rapid.IntRange(1, 4).Draw(t, "publishers")
		sent := map[uint32]uint64{}
		var deliveries [][2]uint64 // publisher, seq
		for p := range pubs {
			n := rapid.IntRange(0, 60).Draw(t, "sent")
			sent[uint32(p)] = uint64(n)
			for s := range n {
				copies := rapid.IntRange(0, 2).Draw(t, "copies") // 0: lost, 2: duplicated
				for range copies {
					deliveries = append(deliveries, [2]uint64{uint64(p), uint64(s)})
				}
			}
		}
		// reorder: a random number of adjacent swaps
		for range rapid.IntRange(0, len(deliveries)).Draw(t, "swaps") {
			if len(deliveries) < 2 {
				break
			}
			i := rapid.IntRange(0, len(deliveries)-2).Draw(t, "at")
			deliveries[i], deliveries[i+1] = deliveries[i+1], deliveries[i]
		}
		var tr Tracker
		now := time.Now()
		seen := map[[2]uint64]bool{}
		high := map[uint64]uint64{}
		var want TrackerStats
		for _, d := range deliveries {
			tr.Observe(payload(3, uint32(d[0]), d[1], now), now)
			want.Received++
			if seen[d] {
				want.Duplicates++
				continue
			}
			seen[d] = true
			want.Unique++
			if h, ok := high[d[0]]; ok && d[1] < h {
				want.Reordered++
			} else {
				high[d[0]] = d[1] + 1
			}
			if d[1]+1 > high[d[0]] {
				high[d[0]] = d[1] + 1
			}
		}
		for p, h := range high {
			for s := range h {
				if !seen[[2]uint64{p, s}] {
					want.Gaps++
				}
			}
		}
		got := tr.Stats()
		if got != want {
			t.Fatalf("tracker %+v\nmodel   %+v", got, want)
		}
		var total uint64
		for _, n := range sent {
			total += n
		}
		if lost := tr.Lost(3, sent); lost+got.Unique != total {
			t.Fatalf("sent %d != unique %d + lost %d", total, got.Unique, lost)
		}
	})
}
