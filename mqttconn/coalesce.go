package mqttconn

import (
	"errors"
	"os"
	"time"
)

// Receive coalescing: fewer wake-ups in a dense stream.
//
// A reader that keeps up with a fast stream of small packets empties its socket after every
// packet or two and goes back to sleep; each packet the broker then writes has to wake it. On
// loopback and on virtual machines that wake-up is paid mostly by the sender: against a
// single-threaded broker such as mosquitto, waking a fast subscriber cost more broker CPU per
// message than routing the message (docs/client.md, "Receive coalescing", has the
// measurements). A slow reader never pays it, since data is always waiting.
//
// So when the reads of a connection come in fast and small, the reader asks the kernel
// (SO_RCVLOWAT, Linux) to wake it only once a few hundred bytes to a few KiB are waiting — as
// many as the stream brings in about coalesceSpan — and bounds that wait with a read deadline
// of coalesceWait. Data already in the socket is still returned at once: only a read that
// would sleep waits for the threshold. When the deadline passes first (the stream slowed, or
// the broker waits for something of ours, such as acknowledgements under a Receive Maximum),
// the threshold is dropped at once, what is there is read, and coalescing stays off for a
// while that doubles with every such miss (up to coalesceOffMax) and resets after a window
// without one. A lone packet, a request and its reply, a paced stream slower than
// coalesceDenseGap per read, and connections that are not TCP (WebSocket) never coalesce.
//
// A publisher reading its acknowledgements coalesces too, within what the broker owes it: a
// dense stream of PUBACKs (4 bytes each, mosquitto writes each at once) woke the publisher's
// reader once per acknowledgement, a wake-up per message on both sides of a loaded machine.
// While replies are owed the threshold is at least coalesceMinAcks and at most 2 bytes per
// reply owed (the smallest reply, PINGRESP, is 2 bytes), so it never asks for more than is
// sure to come; a read that finds fewer replies owed than the threshold needs drops it first.
// Under a small window (fewer than coalesceOwedMin replies owed, such as mosquitto's Receive
// Maximum of 20) it does not coalesce: the publisher already refills only once a quarter of
// the window is free, and same-run comparisons showed no gain there.
const (
	coalesceWindow   = 64                     // reads per rate estimate
	coalesceDenseGap = 50 * time.Microsecond  // reads closer than this on average are dense
	coalesceSpan     = 250 * time.Microsecond // the threshold is what arrives in this time
	coalesceWait     = time.Millisecond       // the longest a read waits for the threshold
	coalesceMin      = 512                    // below this threshold coalescing is not worth it
	coalesceMinAcks  = 16                     // the same while replies are owed (4 PUBACKs)
	coalesceOwedMin  = 32                     // fewer replies owed: no coalescing (a small window)
	coalesceMax      = 4 << 10
	coalesceOffMin   = 100 * time.Millisecond
	coalesceOffMax   = time.Minute
)

// coalescer is the receive-coalescing state of a connection; only the reading goroutine
// touches it.
type coalescer struct {
	lowat           int       // the threshold set on the socket; 0: the kernel's default (1 byte)
	reads           int32     // reads in the current window
	engaged, misses int32     // how often coalescing began, and waits that timed out (for tests)
	missed          bool      // a wait timed out in the current window
	disabled        bool      // the socket does not take SO_RCVLOWAT
	bytes           int       // bytes read in the current window
	start           time.Time // when the window began
	off             time.Duration
	offUntil        time.Time
	forAcks         bool             // the threshold was set while replies were owed: bounded by them
	apply           func(n int) bool // tests: instead of the socket's SO_RCVLOWAT
}

// readCoalesced is one read of the connection with coalescing; now is the time before it.
func (c *Conn) readCoalesced(p []byte, now time.Time) (int, error) {
	co := &c.co
	if co.lowat > 0 && co.forAcks && co.lowat > 2*int(c.awaiting.Load()) {
		co.set(c, 0) // fewer replies owed than the threshold waits for: the rest may never come
	}
	if co.lowat > 0 {
		dl := now.Add(coalesceWait)
		c.nc.SetReadDeadline(dl)
		c.readDL = dl
	}
	n, err := c.nc.Read(p)
	if co.lowat > 0 && n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		// The threshold did not fill in time: stop waiting for it and read what there is.
		co.miss(c, now) // drops the threshold and restores the keep-alive deadline
		n, err = c.nc.Read(p)
	}
	co.account(c, n, now)
	return n, err
}

// restoreReadDeadline puts back the keep-alive deadline (or none) after a coalescing wait.
func (c *Conn) restoreReadDeadline() {
	var dl time.Time
	if c.keepAlive > 0 {
		dl = c.keepAliveDeadline(time.Now())
	}
	c.nc.SetReadDeadline(dl)
	c.readDL = dl
}

// miss turns coalescing off after a wait that timed out, for twice as long as the last time.
func (co *coalescer) miss(c *Conn, now time.Time) {
	co.misses++
	co.set(c, 0)
	co.missed = true
	co.off = min(max(co.off*2, coalesceOffMin), coalesceOffMax)
	co.offUntil = now.Add(co.off)
}

// account adds a read to the window and, at the end of each window, sets the threshold the
// stream's rate calls for.
func (co *coalescer) account(c *Conn, n int, now time.Time) {
	if co.disabled {
		return
	}
	if co.reads == 0 {
		co.start = now
	}
	co.reads++
	co.bytes += n
	if co.reads < coalesceWindow {
		return
	}
	elapsed := now.Sub(co.start)
	bytes, missed := co.bytes, co.missed
	co.reads, co.bytes, co.missed = 0, 0, false
	if !missed && co.lowat > 0 {
		co.off = 0 // a whole window of coalesced reads without a miss
	}
	if now.Before(co.offUntil) {
		return
	}
	want := 0
	// While the broker owes us replies, the reads are what reopens our window (PUBACKs under
	// a Receive Maximum or an in-flight limit): the threshold stays within what is owed, so
	// the wait ends with the replies, not with the deadline.
	owed := int(c.awaiting.Load())
	if elapsed > 0 && (co.lowat > 0 || elapsed < coalesceWindow*coalesceDenseGap) {
		want = int(float64(bytes) / elapsed.Seconds() * coalesceSpan.Seconds())
		least := coalesceMin
		if owed > 0 {
			want, least = min(want, 2*owed), coalesceMinAcks
			if owed < coalesceOwedMin {
				want = 0
			}
		}
		want = min(want, coalesceMax)
		if want < least || (co.lowat == 0 && bytes/coalesceWindow >= want) {
			want = 0 // too slow to be worth it, or the reads are already as large
		}
	}
	co.forAcks = owed > 0
	co.set(c, want)
}

// set puts the threshold on the socket when it changes by more than a quarter (a system call
// saved at most windows of a steady stream).
func (co *coalescer) set(c *Conn, lowat int) {
	if lowat == co.lowat || lowat > 0 && co.lowat > 0 && abs(lowat-co.lowat) < co.lowat/4 {
		return
	}
	was := co.lowat
	apply := c.sock.setRcvLowat
	if co.apply != nil {
		apply = co.apply
	}
	if apply(max(lowat, 1)) {
		co.lowat = lowat
	} else {
		co.disabled = lowat > 0
		co.lowat = 0
	}
	switch {
	case was == 0 && co.lowat > 0:
		co.engaged++
	case was > 0 && co.lowat == 0:
		// Reads wait for the keep alive again, whether or not the socket took the change.
		c.restoreReadDeadline()
	}
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
