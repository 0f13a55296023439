package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// MaxStreams bounds the publisher streams one Tracker follows; messages of further streams are
// counted in Untracked and nothing else.
const MaxStreams = 1 << 16

// MaxGaps bounds the missing sequence numbers remembered per stream. A stream missing more
// (a long loss) forgets the rest: they count as lost, and should one still arrive it counts as
// received and unique but cannot be told from a duplicate (Stats.Forgotten says how many).
const MaxGaps = 1 << 12

// Tracker counts what one subscriber received: every message, the duplicates, those that came
// after a later one of the same publisher (reordered), and the end-to-end latency from the send
// time in the header. Memory per stream is constant while messages arrive in order and grows
// with the gaps, up to MaxGaps. Its methods are safe for concurrent use.
type Tracker struct {
	// FromFirst starts each stream at the first sequence number seen rather than at 0: for a
	// subscriber that joined a publisher already running. Set it before use.
	FromFirst bool

	mu      sync.Mutex
	streams map[streamKey]*stream
	stats   TrackerStats
	latency *hdrhistogram.Histogram
}

type streamKey struct{ run, publisher uint32 }

type stream struct {
	next      uint64              // one past the highest sequence number received
	unique    uint64              // distinct sequence numbers received
	gaps      map[uint64]struct{} // below next, not yet received (at most MaxGaps)
	forgotten uint64              // gaps not remembered for the bound
}

// TrackerStats are a Tracker's counts. Unique = Received - Duplicates.
type TrackerStats struct {
	Received   uint64 `json:"received"`   // benchmark messages received, duplicates included
	Unique     uint64 `json:"unique"`     // distinct (run, publisher, sequence number)s received
	Duplicates uint64 `json:"duplicates"` // received again
	Reordered  uint64 `json:"reordered"`  // arrived after a message its publisher sent later
	Gaps       uint64 `json:"gaps"`       // sequence numbers below the highest received that have not arrived
	Forgotten  uint64 `json:"forgotten"`  // gaps beyond MaxGaps (see there)
	NoHeader   uint64 `json:"no_header"`  // messages without a benchmark header: not counted otherwise
	Untracked  uint64 `json:"untracked"`  // messages of streams beyond MaxStreams: not counted otherwise
	ClockSkew  uint64 `json:"clock_skew"` // send times after the receive time (clocks of two machines): no latency recorded
}

// Latency range recorded, in microseconds: 1 µs to 10 minutes, 3 significant digits.
const (
	minLatencyMicros = 1
	maxLatencyMicros = int64(10 * time.Minute / time.Microsecond)
)

func newLatencyHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(minLatencyMicros, maxLatencyMicros, 3)
}

// Observe counts one received payload at time now.
func (t *Tracker) Observe(payload []byte, now time.Time) {
	h, err := ParseHeader(payload)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.latency == nil {
		t.latency = newLatencyHistogram()
		t.streams = map[streamKey]*stream{}
	}
	if err != nil {
		t.stats.NoHeader++
		return
	}
	k := streamKey{h.Run, h.Publisher}
	s := t.streams[k]
	if s == nil {
		if len(t.streams) >= MaxStreams {
			t.stats.Untracked++
			return
		}
		s = &stream{}
		if t.FromFirst {
			s.next = h.Seq
		}
		t.streams[k] = s
	}
	t.stats.Received++
	switch {
	case h.Seq >= s.next:
		for q := s.next; q < h.Seq; q++ {
			if len(s.gaps) >= MaxGaps {
				s.forgotten += h.Seq - q
				break
			}
			if s.gaps == nil {
				s.gaps = map[uint64]struct{}{}
			}
			s.gaps[q] = struct{}{}
		}
		s.next = h.Seq + 1
		s.unique++
	default:
		if _, ok := s.gaps[h.Seq]; ok {
			delete(s.gaps, h.Seq)
			s.unique++
			t.stats.Reordered++
		} else if s.forgotten > 0 {
			// Cannot be told from a duplicate: taken as one of the forgotten gaps.
			s.forgotten--
			s.unique++
			t.stats.Reordered++
		} else {
			t.stats.Duplicates++
			return // a duplicate's latency is the broker's resend, not the path's
		}
	}
	d := now.Sub(h.Sent)
	if d < 0 {
		t.stats.ClockSkew++
		return
	}
	_ = t.latency.RecordValue(max(int64(d/time.Microsecond), minLatencyMicros))
}

// Stats returns the counts so far.
func (t *Tracker) Stats() TrackerStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.stats
	for _, s := range t.streams {
		st.Unique += s.unique
		st.Gaps += uint64(len(s.gaps)) + s.forgotten
		st.Forgotten += s.forgotten
	}
	return st
}

// Lost returns how many of the messages expected from run's publishers did not arrive:
// expected[p] is the number publisher p sent (sequence numbers 0 to expected[p]-1).
// A publisher that sent more than expected (a publish that failed locally but reached the
// broker) does not make up for another's loss.
func (t *Tracker) Lost(run uint32, expected map[uint32]uint64) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var lost uint64
	for p, n := range expected {
		var got uint64
		if s := t.streams[streamKey{run, p}]; s != nil {
			got = s.unique
		}
		if got < n {
			lost += n - got
		}
	}
	return lost
}

// Latency returns a copy of the end-to-end latency histogram, in microseconds.
func (t *Tracker) Latency() *hdrhistogram.Histogram {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.latency == nil {
		return newLatencyHistogram()
	}
	return hdrhistogram.Import(t.latency.Export())
}
