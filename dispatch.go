// Delivery to handlers: the bounded handler queue, inline delivery and back-pressure.

package fennec

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fennec-mqtt/fennec/internal/connfast"
	"github.com/fennec-mqtt/fennec/mqttconn"
	"github.com/fennec-mqtt/fennec/topic"
)

// The handler queue is bounded for the messages the protocol does not bound itself: QoS 0,
// every QoS with MQTT 3.1.1 (it has no Receive Maximum), and MQTT 5 QoS 1/2 a broker sends
// beyond our Receive Maximum. It holds dispatchLimit such messages or dispatchBytes of their
// topics and payloads, whichever comes first (always at least one message). When it is full:
//   - the reading goroutine stops reading, and TCP pushes back on the broker;
//   - unless a call made while a handler runs waits for the broker (its answer may be behind
//     the next message): then reading goes on and the queue grows up to the hard bound,
//     hardLimit messages or hardBytes. Past it, QoS 0 messages are dropped and counted
//     (Stats.DroppedQoS0); QoS 1/2 messages, which stay unacknowledged until handled, end the
//     connection (errInboundOverflow; DISCONNECT 0x93 for an MQTT 5 broker past our Receive
//     Maximum), and the broker sends them again on the next one.
const (
	dispatchLimit = 1024
	dispatchBytes = 8 << 20
	hardLimit     = 65536
	hardBytes     = 32 << 20
)

// errInboundOverflow ends a connection whose broker kept sending QoS 1/2 messages past the
// handler queue's hard bound while a handler waited for the broker.
var errInboundOverflow = errors.New("fennec: inbound messages exceed the handler queue's bound while a handler waits for the broker")

type enqueued int

const (
	queued      enqueued = iota
	notQueued            // the connection closed or the client stopped first
	droppedQoS0          // a QoS 0 message dropped: the queue is full and a handler waits
	overflow             // a QoS 1/2 message past the hard bound
)

type delivery struct {
	msg   *Message
	id    uint16
	fn    func() // a callback (OnConnectionUp / OnConnectionLost) instead of a message
	bound bool
	size  int // topic and payload bytes, counted against dispatchBytes when bound
}

// dispatcher runs handlers and callbacks in order on one goroutine, started when work arrives
// and ended when the queue is empty: an idle client has no handler goroutine.
type dispatcher struct {
	c       *Client
	mu      sync.Mutex
	q       []delivery
	head    int
	nBound  int // bound deliveries queued
	nBytes  int // their sizes
	dropped uint64
	running bool
	stopped bool // stop was called: nothing more is queued
	space   chan struct{}
	wg      sync.WaitGroup

	hs        []MessageHandler // the handlers of the message being delivered (one at a time)
	inHandler atomic.Bool
	inline    *mqttconn.Conn // set while a handler runs on that connection's reading goroutine
	watch     *time.Timer    // hands reading off when an inline handler runs too long
	waiters   atomic.Int32
}

// beginWait records that a client call is about to wait for the broker. When the call comes
// from a handler, the reading goroutine must not block on a full dispatch queue, or the answer
// the handler waits for could never be read: it queues beyond the limit instead (bounded by
// what the broker sends before that answer).
func (d *dispatcher) beginWait() bool {
	if !d.inHandler.Load() {
		return false
	}
	d.handOffReader()
	d.waiters.Add(1)
	d.mu.Lock()
	d.signalLocked()
	d.mu.Unlock()
	return true
}

// inlineFor is how long a handler may run on the reading goroutine before reading moves to
// another goroutine (handOffReader).
const inlineFor = time.Millisecond

// deliverInline runs a received message's handlers on the reading goroutine when nothing is
// queued or running: the message then reaches its handler without a hand-off to the handler
// goroutine (a goroutine start and, often, a wake-up of another thread — a few µs of the round
// trip). Handlers still run one at a time and in order: while this one runs, the dispatcher
// counts as running and what arrives next is queued behind it. If the handler waits for the
// broker (Publish, Subscribe, a token…) or runs longer than inlineFor, handOffReader moves
// reading to a new goroutine, so nothing it waits for is held up. It reports false when the
// message must be queued instead.
func (d *dispatcher) deliverInline(it delivery, conn *mqttconn.Conn) bool {
	d.mu.Lock()
	if d.running || d.head != len(d.q) || d.stopped {
		d.mu.Unlock()
		return false
	}
	d.running = true
	d.inline = conn
	d.wg.Add(1)
	if d.watch == nil {
		d.watch = time.AfterFunc(inlineFor, d.handOffReader)
	} else {
		d.watch.Reset(inlineFor)
	}
	d.mu.Unlock()
	d.run(it)
	d.mu.Lock()
	d.watch.Stop()
	d.inline = nil
	if d.head == len(d.q) {
		d.q, d.head = d.q[:0], 0
		d.running = false
		d.mu.Unlock()
		d.wg.Done()
		return true
	}
	d.mu.Unlock()
	go d.loop() // what was queued meanwhile; the loop takes over our d.wg count
	return true
}

// handOffReader moves reading to a new goroutine when a handler runs on the reading goroutine
// (deliverInline); the new goroutine takes over the connection goroutine's role and count.
func (d *dispatcher) handOffReader() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if conn := d.inline; conn != nil && connfast.HandOff(conn) {
		d.inline = nil
		go d.c.run(conn)
	}
}

func (d *dispatcher) endWait(w bool) {
	if w {
		d.waiters.Add(-1)
	}
}

// dispatchWaits counts the waits of the reading goroutine on a full handler queue (tests).
var dispatchWaits atomic.Int64

func (d *dispatcher) signalLocked() {
	if d.space != nil {
		close(d.space)
		d.space = nil
	}
}

func (d *dispatcher) droppedCount() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dropped
}

func (d *dispatcher) enqueueFunc(fn func()) {
	d.enqueue(delivery{fn: fn}, false, nil)
}

// full reports whether the bound deliveries, with one more of size bytes, exceed n messages
// or b bytes.
func (d *dispatcher) full(size, n, b int) bool {
	return d.nBound > 0 && (d.nBound >= n || d.nBytes+size > b)
}

// enqueue queues a delivery. A bounded one follows the policy above: it waits while the queue
// is full (back-pressure on the reading goroutine, hence on the broker), or, while a handler
// waits for the broker, grows up to the hard bound, past which a QoS 0 message is dropped and a
// QoS 1/2 one refused.
func (d *dispatcher) enqueue(it delivery, bounded bool, conn *mqttconn.Conn) enqueued {
	if it.msg != nil {
		it.size = len(it.msg.Topic) + len(it.msg.Payload)
	}
	d.mu.Lock()
	for bounded && !d.stopped && d.full(it.size, dispatchLimit, dispatchBytes) {
		if d.inHandler.Load() && d.waiters.Load() > 0 {
			if !d.full(it.size, hardLimit, hardBytes) {
				break
			}
			r := overflow
			if it.msg.QoS == 0 {
				d.dropped++
				r = droppedQoS0
			}
			d.mu.Unlock()
			return r
		}
		if d.space == nil {
			d.space = make(chan struct{})
		}
		ch := d.space
		d.mu.Unlock()
		dispatchWaits.Add(1)
		select {
		case <-ch:
		case <-conn.Done():
			return notQueued
		}
		d.mu.Lock()
	}
	if d.stopped {
		d.mu.Unlock()
		return notQueued
	}
	it.bound = bounded
	if bounded {
		d.nBound++
		d.nBytes += it.size
	}
	d.q = append(d.q, it)
	if !d.running {
		d.running = true
		d.wg.Add(1)
		go d.loop()
	}
	d.mu.Unlock()
	return queued
}

func (d *dispatcher) loop() {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		if d.head == len(d.q) {
			d.q, d.head = d.q[:0], 0
			if cap(d.q) > 64 {
				d.q = nil
			}
			d.running = false
			d.mu.Unlock()
			return
		}
		it := d.q[d.head]
		d.q[d.head] = delivery{}
		d.head++
		if it.bound {
			d.nBound--
			d.nBytes -= it.size
			// The reading goroutine, waiting on a full queue, is woken once an eighth of the
			// queue is free: woken per message, it queued one and waited again, a wake-up
			// per message while the handlers are the bottleneck.
			if !d.full(0, dispatchLimit-dispatchLimit/8, dispatchBytes-dispatchBytes/8) {
				d.signalLocked()
			}
		}
		d.mu.Unlock()
		d.run(it)
	}
}

func (d *dispatcher) run(it delivery) {
	c := d.c
	select {
	case <-c.closeCh:
		return // stopped: no handler runs after Disconnect/Close
	default:
	}
	d.inHandler.Store(true)
	defer d.inHandler.Store(false)
	if it.fn != nil {
		it.fn()
		return
	}
	d.hs = c.route(d.hs[:0], it.msg)
	for i, h := range d.hs {
		d.hs[i] = nil
		h(it.msg)
	}
	c.handled(it)
}

// stop refuses further deliveries and calls done once the last queued or running one has
// returned. It may be called from a handler: it does not wait.
func (d *dispatcher) stop(done func()) {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	d.stopped = true
	d.signalLocked()
	d.mu.Unlock()
	go func() {
		d.wg.Wait() // no Add follows: stopped refuses new work
		done()
	}()
}

// matchFilter reports whether the client's filter f matches topic name t; a shared
// subscription "$share/group/filter" matches as its filter.
func matchFilter(f, t string) bool {
	if topic.IsShared(f) {
		_, tf, err := topic.ParseShared(f)
		if err != nil {
			return false
		}
		f = tf
	}
	return topic.Match(f, t)
}

func validFilter(f string) error {
	if err := topic.ValidateFilter(f); err != nil {
		return fmt.Errorf("fennec: %w", err)
	}
	return nil
}
