package broker

import (
	"net"
	"sync"
	"time"
)

// Outgoing bytes of one connection.
//
// mochi writes each packet with its own Write, under the client's lock: one system call per
// packet (and one TLS record), which made draining a backlog of stored messages cost a write
// call per message. The connection's writes go through a writeQueue instead: Write appends the
// packet to a pending buffer and returns; a flusher goroutine, started when bytes are pending
// and ended when none are, writes everything pending with one call. While it writes, new
// packets gather behind it, so a burst goes out in few calls and a lone packet goes out at
// once, without a timer.
//
// Bounds and policy: at most writeQueueLimit bytes wait (plus the one packet that crossed the
// limit); a Write past the limit waits until the flusher has taken the pending bytes, as a Write
// to a slow peer's full socket does. The first write error closes the connection (its reader
// then ends, as it would have after a failed write) and every later Write returns it. Close
// writes what is pending first, for at most closeFlushTimeout, then closes: a DISCONNECT or
// CONNACK refusal written just before Close is not lost. Order is kept: bytes go out in the
// order of the Writes.

const (
	writeQueueLimit   = 64 << 10
	writeSpareMax     = 64 << 10 // a buffer kept for reuse between bursts, at most
	closeFlushTimeout = time.Second
)

type writeQueue struct {
	conn net.Conn

	mu      sync.Mutex
	cond    sync.Cond // pending taken, or the flusher ended
	pending []byte
	spare   []byte
	active  bool // a flusher is running
	closed  bool
	err     error
}

func newWriteQueue(c net.Conn) *writeQueue {
	q := &writeQueue{conn: c}
	q.cond.L = &q.mu
	return q
}

// Write queues p. It returns an error once a write failed or the connection was closed.
func (q *writeQueue) Write(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.pending) >= writeQueueLimit && q.err == nil && !q.closed {
		q.cond.Wait()
	}
	if q.err != nil {
		return 0, q.err
	}
	if q.closed {
		return 0, net.ErrClosed
	}
	if q.pending == nil && q.spare != nil {
		q.pending, q.spare = q.spare[:0], nil
	}
	q.pending = append(q.pending, p...)
	if !q.active {
		q.active = true
		go q.flush()
	}
	return len(p), nil
}

// flush writes pending bytes until none are left.
func (q *writeQueue) flush() {
	q.mu.Lock()
	for len(q.pending) > 0 && q.err == nil {
		buf := q.pending
		q.pending = nil
		q.cond.Broadcast()
		q.mu.Unlock()
		_, err := q.conn.Write(buf)
		q.mu.Lock()
		if err != nil {
			q.err = err
			q.pending = nil
			q.mu.Unlock()
			q.conn.Close() // the reader ends too, as after any failed write
			q.mu.Lock()
			break
		}
		if cap(buf) <= writeSpareMax && q.spare == nil {
			q.spare = buf[:0]
		}
	}
	q.active = false
	q.cond.Broadcast()
	q.mu.Unlock()
}

// Close writes what is pending (for at most closeFlushTimeout) and closes the connection. The
// first Close returns the connection's Close error; a later one, net.ErrClosed.
func (q *writeQueue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return net.ErrClosed
	}
	q.closed = true
	if q.active {
		_ = q.conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		for q.active {
			q.cond.Wait()
		}
	}
	q.pending, q.spare = nil, nil
	q.cond.Broadcast()
	q.mu.Unlock()
	return q.conn.Close()
}
