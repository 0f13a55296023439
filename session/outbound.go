package session

import (
	"errors"

	"github.com/fennec-mqtt/fennec/packet"
)

// ErrDeliveryUnknown completes a QoS 2 message the broker acknowledged (PUBREC) and then lost
// with its session before the handshake ended (PUBCOMP): whether it reached subscribers cannot
// be known. A broker that forwards QoS 2 messages on PUBREL, as mosquitto does, has dropped it;
// one that forwards on PUBLISH has delivered it, so sending it again could deliver it twice.
var ErrDeliveryUnknown = errors.New("fennec: the broker lost the session in the middle of the QoS 2 handshake (after PUBREC, before PUBCOMP): delivery unknown")

// Entry is one outbound message in an Outbound queue. Ext is the caller's (the client keeps its
// token there, so that a message, its packet and its token are one allocation).
type Entry[T any] struct {
	Pub *packet.Publish // &P, or a restored packet
	P   packet.Publish
	Ext T

	seq      uint64
	sent     bool // sent on the current connection
	everSent bool // sent on some connection (resend with DUP)
	released bool // QoS 2: PUBREC received, PUBREL (re)sent
	done     bool
}

// Seq is the entry's place in Publish order (its Record.Seq; 0 for QoS 0).
func (e *Entry[T]) Seq() uint64 { return e.seq }

// Released reports whether the broker sent PUBREC for this QoS 2 message.
func (e *Entry[T]) Released() bool { return e.released }

// Done reports whether the entry completed.
func (e *Entry[T]) Done() bool { return e.done }

// Action is what Next asks the caller to send for an entry.
type Action byte

const (
	None        Action = iota // nothing to send now (window full, offline, queue empty)
	SendPublish               // send e.Pub (QoS 0, or a QoS 1/2 message; DUP is set for a resend)
	SendPubrel                // send PUBREL for e.Pub.PacketID (QoS 2, released)
)

// AckResult is what Ack did with an acknowledgement.
type AckResult byte

const (
	AckViolation AckResult = iota // no message in the state this acknowledgement answers
	AckReleased                   // PUBREC: the entry is released; make it durable, then send PUBREL
	AckCompleted                  // the entry completed (OnDone was called)
)

// Outbound is the outbound half of an MQTT session as a deterministic state machine: the queue
// of messages in Publish order (QoS 0 ones while not yet written, QoS 1/2 until acknowledged),
// packet identifiers, the in-flight window and what is sent again after a reconnect. It does no
// I/O, starts no goroutine and takes no lock: the caller serialises calls, performs the sends
// that Next returns and the store writes the results call for.
//
// Completions are reported through OnDone, synchronously, once per entry.
type Outbound[T any] struct {
	// OnDone is called when an entry completes, with nil or the reason it failed.
	OnDone func(e *Entry[T], err error)

	ids        IDs
	seq        uint64
	q          []*Entry[T] // in Publish order; q[head:] holds every entry not done
	head       int
	next       int // index in q of the first entry not sent on this connection
	byID       map[uint16]*Entry[T]
	nWaiting   int  // entries in q not yet sent on this connection
	nReserved  int  // places held by Take for entries not yet committed
	nInflight  int  // QoS 1/2 sent and not completed on this connection
	n0         int  // QoS 0 handed to the connection, not yet written
	windowShut bool // the window filled up and has not drained to its refill mark
	window     int  // ours (Config.MaxInflight)
	window2    int  // ours for QoS 2 alone, within window (SetQoS2Window); 0: none
	n2         int  // QoS 2 sent and not completed on this connection
	srvWindow  int  // the broker's Receive Maximum
	maxQueue   int
	online     bool
	gen        uint64
}

// MaxUnwritten0 bounds the QoS 0 messages handed to the connection and not yet written.
const MaxUnwritten0 = 1024

// NewOutbound returns an empty machine with an in-flight window (1–65,535) and a bound on the
// messages accepted but not yet sent.
func NewOutbound[T any](window, maxQueue int) *Outbound[T] {
	return &Outbound[T]{window: window, maxQueue: maxQueue, srvWindow: 65535}
}

// SetQoS2Window bounds the QoS 2 messages in flight to n (0: only the window bounds them),
// within the window. Order is kept: a QoS 2 message that must wait holds back what follows it.
// For MQTT 3.1.1, whose brokers announce no limit but keep one on the QoS 2 exchanges they
// hold open (mosquitto's max_inflight_messages), while they acknowledge QoS 1 at once.
func (o *Outbound[T]) SetQoS2Window(n int) { o.window2 = n }

// IDs returns the packet identifier allocator, which SUBSCRIBE and UNSUBSCRIBE share.
func (o *Outbound[T]) IDs() *IDs { return &o.ids }

// Gen counts connections: it changes with every Up.
func (o *Outbound[T]) Gen() uint64 { return o.gen }

// Restore adds a message from the store, before the first connection. It reports false for a
// record without packet ID or with one already restored.
func (o *Outbound[T]) Restore(e *Entry[T], r Record) bool {
	if r.PacketID == 0 || o.ids.InUse(r.PacketID) {
		return false
	}
	e.Pub.PacketID = r.PacketID
	o.ids.Use(r.PacketID)
	e.seq, e.everSent, e.released = r.Seq, true, r.Released
	o.q = append(o.q, e)
	o.index(r.PacketID, e)
	o.nWaiting++
	o.seq = max(o.seq, r.Seq)
	return true
}

// Room reports whether a message of qos can be taken now: the queue holds fewer than its bound
// not yet sent, and (QoS 1/2) a packet identifier is free.
func (o *Outbound[T]) Room(qos packet.QoS) bool {
	return o.nWaiting+o.nReserved < o.maxQueue && (qos == 0 || o.ids.Len() < 65535)
}

// Free returns how many more messages the queue takes before it is full (its bound minus the
// messages not yet sent); a QoS 1/2 message also needs a free packet identifier (Room).
func (o *Outbound[T]) Free() int { return o.maxQueue - o.nWaiting - o.nReserved }

// Take holds a place for e and, for QoS 1/2, gives it a packet identifier and its Seq, so that
// its store record can be written before it is queued. Commit or Abandon must follow. The caller
// checked Room.
func (o *Outbound[T]) Take(e *Entry[T]) {
	o.nReserved++
	if e.Pub.QoS > 0 {
		id, _ := o.ids.Take()
		e.Pub.PacketID = id
		o.seq++
		e.seq = o.seq
		o.index(id, e)
	}
}

// index records e under its packet identifier; the map is made on first use, so that an idle
// connection holds none.
func (o *Outbound[T]) index(id uint16, e *Entry[T]) {
	if o.byID == nil {
		o.byID = map[uint16]*Entry[T]{}
	}
	o.byID[id] = e
}

// Commit queues e after Take.
func (o *Outbound[T]) Commit(e *Entry[T]) {
	o.nReserved--
	o.q = append(o.q, e)
	o.nWaiting++
}

// Abandon releases what Take held for e (its store write failed).
func (o *Outbound[T]) Abandon(e *Entry[T]) {
	o.nReserved--
	if e.Pub.QoS > 0 {
		delete(o.byID, e.Pub.PacketID)
		o.ids.Free(e.Pub.PacketID)
	}
}

// Up starts a connection on which the broker's Receive Maximum is srvWindow (65,535: none).
// Everything not done is sent again, in order: QoS 1/2 with DUP when the broker kept the session,
// PUBREL for released QoS 2 messages. When it lost the session (sessionPresent false), messages
// are sent again as new ones, and released QoS 2 messages fail with ErrDeliveryUnknown.
func (o *Outbound[T]) Up(sessionPresent bool, srvWindow int) {
	o.online = true
	o.gen++
	o.srvWindow = srvWindow
	o.next = o.head
	o.nInflight, o.n0, o.n2 = 0, 0, 0
	o.windowShut = false
	o.nWaiting = 0
	var unknown []*Entry[T]
	for _, e := range o.q[o.head:] {
		if e.done {
			continue
		}
		e.sent = false
		o.nWaiting++
		if !sessionPresent {
			if e.released {
				unknown = append(unknown, e) // completed after the walk: completing compacts q
				continue
			}
			e.everSent = false
			e.Pub.Dup = false
		}
	}
	for _, e := range unknown {
		o.complete(e, ErrDeliveryUnknown)
	}
}

// Down ends the connection: nothing is sent until the next Up.
func (o *Outbound[T]) Down() { o.online = false }

// Next returns the next entry to send and what to send for it, as far as the in-flight window
// (ours and the broker's Receive Maximum [MQTT-4.9.0-2]) allows, and marks it sent; None when
// nothing can be sent now.
func (o *Outbound[T]) Next() (*Entry[T], Action) {
	if !o.online {
		return nil, None
	}
	window := min(o.window, o.srvWindow)
	for o.next < len(o.q) {
		e := o.q[o.next]
		if e.done {
			o.next++
			continue
		}
		act := SendPublish
		if e.Pub.QoS == 0 {
			if o.n0 >= MaxUnwritten0 {
				return nil, None
			}
			o.n0++
		} else {
			// A full window opens again only when a quarter of it is free: acknowledgements
			// arrive in bursts, and refilling one message per acknowledgement would send a
			// window's worth of one-packet writes (syscalls at both ends) instead of a few
			// batches.
			if o.nInflight >= window || o.windowShut && o.nInflight > window-max(1, window/4) {
				o.windowShut = true
				return nil, None
			}
			qos2 := e.Pub.QoS == 2
			if qos2 && o.window2 > 0 && o.n2 >= o.window2 {
				return nil, None // in order: what follows waits too
			}
			o.windowShut = false
			o.nInflight++
			if qos2 {
				o.n2++
			}
			if e.released {
				act = SendPubrel
			} else {
				if e.everSent {
					e.Pub.Dup = true // [MQTT-3.3.1-1]
				}
				e.everSent = true
			}
		}
		e.sent = true
		o.nWaiting--
		o.next++
		return e, act
	}
	return nil, None
}

// Written0 records that a QoS 0 entry sent on connection gen was written (err nil) or not. A
// connection failure (connLost) leaves it queued for the next connection: QoS 0 is never
// reported sent when it was not. It reports whether the entry completed.
func (o *Outbound[T]) Written0(e *Entry[T], gen uint64, err error, connLost bool) bool {
	if gen == o.gen {
		o.n0--
	}
	if e.done || err != nil && connLost {
		return false
	}
	o.complete(e, err)
	return true
}

// Failed completes a QoS 1/2 entry sent on connection gen whose PUBLISH could not be written for
// a reason other than the connection (too large for the broker, not encodable).
func (o *Outbound[T]) Failed(e *Entry[T], gen uint64, err error) {
	if e.done {
		return
	}
	if gen == o.gen && e.sent {
		o.landed(e)
	}
	o.complete(e, err)
}

// landed takes e, sent on this connection, out of the in-flight counts.
func (o *Outbound[T]) landed(e *Entry[T]) {
	o.nInflight--
	if e.Pub.QoS == 2 {
		o.n2--
	}
}

// Ack applies an acknowledgement (PUBACK, PUBREC or PUBCOMP) for packet identifier id with
// reason code rc. err is the failure to complete the entry with when rc ≥ 0x80.
func (o *Outbound[T]) Ack(t packet.Type, id uint16, rc packet.ReasonCode, err error) (*Entry[T], AckResult) {
	e := o.byID[id]
	if e == nil || e.done || !e.sent || !o.online {
		return e, AckViolation
	}
	switch {
	case t == packet.PUBACK && e.Pub.QoS != 1,
		t == packet.PUBREC && (e.Pub.QoS != 2 || e.released),
		t == packet.PUBCOMP && (e.Pub.QoS != 2 || !e.released),
		t != packet.PUBACK && t != packet.PUBREC && t != packet.PUBCOMP:
		return e, AckViolation
	}
	if t == packet.PUBREC && rc < 0x80 {
		e.released = true
		return e, AckReleased
	}
	o.landed(e)
	if rc < 0x80 {
		err = nil
	}
	o.complete(e, err)
	return e, AckCompleted
}

// complete finishes e: frees its packet identifier, drops it from the queue and reports it.
func (o *Outbound[T]) complete(e *Entry[T], err error) {
	if e.done {
		return
	}
	e.done = true
	if !e.sent {
		o.nWaiting--
	}
	if e.Pub.QoS > 0 {
		delete(o.byID, e.Pub.PacketID)
		o.ids.Free(e.Pub.PacketID)
	}
	for o.head < len(o.q) && o.q[o.head].done {
		o.q[o.head] = nil
		o.head++
	}
	// Everything before head is done: the next entry to send is never among the cleared ones
	// (an entry completed before it was sent, as at a reconnect that lost the session, moves
	// the head past next).
	o.next = max(o.next, o.head)
	if o.head > 256 && o.head*2 > len(o.q) {
		n := copy(o.q, o.q[o.head:])
		clear(o.q[n:])
		o.q = o.q[:n]
		o.next -= o.head
		o.head = 0
	}
	if o.head == len(o.q) && cap(o.q) > 4096 {
		o.q, o.head, o.next = nil, 0, 0
	}
	if o.OnDone != nil {
		o.OnDone(e, err)
	}
}

// FailAll ends every entry not done and empties the queue (the client stops): fn is called for
// each, instead of OnDone, since a stopping client keeps durable records for the next process.
// It returns how many QoS 1/2 entries it ended.
func (o *Outbound[T]) FailAll(fn func(e *Entry[T])) int {
	n := 0
	q := o.q[o.head:]
	o.q, o.head, o.next, o.nWaiting = nil, 0, 0, 0
	o.online = false
	for _, e := range q {
		if e.done {
			continue
		}
		if e.Pub.QoS > 0 {
			n++
			delete(o.byID, e.Pub.PacketID)
			o.ids.Free(e.Pub.PacketID)
		}
		e.done = true
		fn(e)
	}
	return n
}

// Pending returns the number of entries committed and not completed.
func (o *Outbound[T]) Pending() int {
	n := 0
	for _, e := range o.q[o.head:] {
		if !e.done {
			n++
		}
	}
	return n
}

// Inflight returns the QoS 1/2 entries sent on this connection and not completed.
func (o *Outbound[T]) Inflight() int { return o.nInflight }
