// Outgoing messages: Token, Publish and PublishAsync, and the pump that moves the session's
// queue onto the connection.

package fennec

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/fennec-mqtt/fennec/internal/connfast"
	"github.com/fennec-mqtt/fennec/mqttconn"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/session"
	"github.com/fennec-mqtt/fennec/topic"
)

// Token tracks one PublishAsync.
type Token struct {
	disp     *dispatcher // nil for a token failed at once
	queued   time.Time   // when a message with a Message Expiry Interval was queued
	mu       sync.Mutex
	ch       chan struct{} // made by the first Done or Wait before completion
	finished bool
	err      error
	waiter   bool // Done was called from a handler: the dispatcher counts a waiter until completion
}

// closedCh is the Done channel of a token that completed before anyone asked for one.
var closedCh = func() chan struct{} { ch := make(chan struct{}); close(ch); return ch }()

func errToken(err error) *Token {
	return &Token{finished: true, err: err}
}

// FailedToken returns a token that has already failed with err: for a wrapper that refuses a
// message before it is queued (awsiot checks AWS's limits this way).
func FailedToken(err error) *Token { return errToken(err) }

func (t *Token) complete(err error) {
	t.mu.Lock()
	t.err, t.finished = err, true
	if t.ch != nil {
		close(t.ch)
	}
	w := t.waiter
	t.waiter = false
	t.mu.Unlock()
	if w {
		t.disp.endWait(true)
	}
}

// Done is closed when the publish completed: QoS 0 written to the network, QoS 1 PUBACK, QoS
// 2 PUBCOMP received, or failed.
func (t *Token) Done() <-chan struct{} {
	t.mu.Lock()
	if t.ch == nil {
		if t.finished {
			t.mu.Unlock()
			return closedCh
		}
		t.ch = make(chan struct{})
	}
	ch := t.ch
	register := t.disp != nil && !t.waiter
	if register {
		// The caller is about to wait for the broker. From a handler, that wait must not be
		// held up by reading: reading moves off the handler's goroutine, and the reader may
		// queue beyond the dispatch limit until this token completes, or the acknowledgement
		// the handler waits for could never be read behind a full queue. Done returns a
		// channel, so the wait is counted until completion rather than until a return.
		t.waiter = t.disp.beginWait()
	}
	counted := t.waiter
	t.mu.Unlock()
	if register && !counted {
		t.disp.handOffReader()
	}
	return ch
}

// result returns the outcome and true once the publish completed.
func (t *Token) result() (error, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err, t.finished
}

// Err returns the outcome once Done is closed (nil: success); before that it returns nil.
func (t *Token) Err() error {
	err, _ := t.result()
	return err
}

// Wait waits for the outcome within ctx.
func (t *Token) Wait(ctx context.Context) error {
	if err, ok := t.result(); ok {
		return err
	}
	select {
	case <-t.Done():
		err, _ := t.result()
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func validTopicName(s string) error {
	if err := topic.ValidateName(s); err != nil {
		return fmt.Errorf("fennec: %w", err)
	}
	return nil
}

// Publish sends m and waits for its outcome within ctx: QoS 0 returns once the packet was
// written to the network, QoS 1 when PUBACK arrived, QoS 2 when PUBCOMP arrived. A broker
// refusal (reason code ≥ 0x80) returns a *ReasonError.
//
// While offline, m is queued (up to Config.MaxOfflineQueue messages, else ErrQueueFull) and
// sent after reconnecting. While the in-flight window is full Publish waits. If ctx ends after
// the message was accepted, Publish returns ctx's error but the message stays queued and will
// still be sent: it was not dropped.
//
// The client keeps m.Payload (it is not copied): do not modify it until the publish completed.
func (c *Client) Publish(ctx context.Context, m *Message) error {
	t, err := c.enqueue(ctx, m, true)
	if err != nil {
		return err
	}
	waiting := c.disp.beginWait()
	defer c.disp.endWait(waiting)
	select {
	case <-t.Done():
		err, _ := t.result()
		return err
	case <-ctx.Done():
		return fmt.Errorf("fennec: publish to %q: %w (the message stays queued)", m.Topic, ctx.Err())
	}
}

// PublishAsync queues m and returns a Token for its outcome. While the queue and the in-flight
// window are full and the client is connected it waits for space, within ctx (the token then
// fails with ctx's error and m is not queued); offline with a full queue the token fails with
// ErrQueueFull at once. ctx bounds only that wait: once queued, m is sent whatever becomes of
// ctx. The client keeps m.Payload until the token completes.
func (c *Client) PublishAsync(ctx context.Context, m *Message) *Token {
	t, err := c.enqueue(ctx, m, false)
	if err != nil {
		return errToken(err)
	}
	return t
}

// enqueue queues m for sending. With inline, what it hands to the connection is written by the
// calling goroutine when that cannot block (mqttconn.Conn.Flush): a one-at-a-time Publish then
// needs no hand-off to the writing goroutine. PublishAsync does not, so that the writing
// goroutine coalesces a burst into few writes.
func (c *Client) enqueue(ctx context.Context, m *Message, inline bool) (*Token, error) {
	if err := c.checkMessage(m); err != nil {
		return nil, err
	}
	om := c.newOutMsg(m)
	waiting := false
	defer func() { c.disp.endWait(waiting) }()
	c.mu.Lock()
	if err := c.waitForRoom(ctx, m, &waiting); err != nil {
		return nil, err
	}
	c.out.Take(om)
	if c.store != nil && m.QoS > 0 {
		if err := c.persist(om); err != nil {
			return nil, err
		}
	}
	c.out.Commit(om)
	var flush *mqttconn.Conn
	if inline {
		flush = c.pump(true)
	} else {
		c.pumpLocked()
	}
	c.mu.Unlock()
	if flush != nil {
		connfast.Flush(flush)
	}
	return &om.Ext, nil
}

// checkMessage refuses what no broker may be sent: a nil message, an invalid topic name or
// QoS, a payload that says it is UTF-8 and is not.
func (c *Client) checkMessage(m *Message) error {
	if m == nil {
		return errors.New("fennec: nil message")
	}
	if err := validTopicName(m.Topic); err != nil {
		return err
	}
	if m.QoS > 2 {
		return fmt.Errorf("fennec: QoS %d is not allowed [MQTT-3.3.1-4]", m.QoS)
	}
	if m.Props.Has(packet.PropPayloadFormat) && m.Props.PayloadFormat == 1 && !utf8.Valid(m.Payload) {
		// Payload Format Indicator 1 says the payload is UTF-8 (MQTT 5.0 section 3.3.2.3.2); a
		// receiver may refuse it as 0x99 Payload format invalid.
		return fmt.Errorf("fennec: publish to %q: Payload Format Indicator 1 (UTF-8), but the payload is not valid UTF-8", m.Topic)
	}
	return nil
}

// newOutMsg makes the queue entry of m: one allocation for the entry, its packet and its
// token.
func (c *Client) newOutMsg(m *Message) *outMsg {
	om := &outMsg{P: packet.Publish{QoS: m.QoS, Retain: m.Retain, Topic: m.Topic, Payload: m.Payload}}
	om.Pub = &om.P
	om.Ext.disp = &c.disp
	if c.cfg.Version == packet.V5 {
		om.P.Props = m.Props
		if om.P.Props.Has(packet.PropMessageExpiry) {
			om.Ext.queued = time.Now()
		}
	}
	return om
}

// roomWaits counts the waits for room in a full queue (tests check that a fast publisher
// waits once per batch of acknowledgements, not once per acknowledgement).
var roomWaits atomic.Int64

// waitForRoom waits, c.mu held, until the queue has room for a message of m's QoS. It
// returns with c.mu held, or with an error and c.mu released: the client is closed, the
// broker does not support what m asks for, the queue is full while disconnected, or ctx
// ended. A handler that waits here is counted as waiting (*waiting), so that reading goes on
// without it.
func (c *Client) waitForRoom(ctx context.Context, m *Message, waiting *bool) error {
	for {
		if c.closed {
			err := c.closedErr
			c.mu.Unlock()
			if err == nil {
				err = ErrClosed
			}
			return err
		}
		if err := c.brokerSupports(m); err != nil {
			c.mu.Unlock()
			return err
		}
		if c.out.Room(m.QoS) {
			return nil
		}
		if c.conn == nil {
			c.mu.Unlock()
			return ErrQueueFull
		}
		if c.spaceCh == nil {
			c.spaceCh = make(chan struct{})
		}
		ch := c.spaceCh
		c.mu.Unlock()
		roomWaits.Add(1)
		if !*waiting {
			*waiting = c.disp.beginWait()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
	}
}

// brokerSupports reports, c.mu held, whether the connected MQTT 5 broker's CONNACK allows
// m's QoS and retain flag.
func (c *Client) brokerSupports(m *Message) error {
	if c.conn == nil || c.cfg.Version != packet.V5 {
		return nil
	}
	if byte(m.QoS) > c.caps.maxQoS {
		return fmt.Errorf("%w: QoS %d (its Maximum QoS is %d) [MQTT-3.2.2-11]", ErrNotSupported, m.QoS, c.caps.maxQoS)
	}
	if m.Retain && c.caps.noRetain {
		return fmt.Errorf("%w: retained messages (Retain Available 0) [MQTT-3.2.2-14]", ErrNotSupported)
	}
	return nil
}

// persist writes om to the store, c.mu held, its place in the queue reserved (Take). The
// message is durable before Publish accepts it. The write runs outside c.mu: a slow disk holds
// back this publisher only, not the others, the reader or the acknowledgements, and a durable
// store can commit concurrent publishes with one fsync. On error the place is given back and
// persist returns with c.mu released.
func (c *Client) persist(om *outMsg) error {
	c.mu.Unlock()
	data, err := session.MarshalPublish(om.Pub)
	if err == nil {
		err = c.store.Put(session.Record{Seq: om.Seq(), PacketID: om.Pub.PacketID, Data: data})
	}
	c.mu.Lock()
	if err == nil && c.closed {
		// Closed while the record was written: Publish fails, so the record must not be
		// sent by the next process either.
		c.store.Delete(om.Seq())
		err = c.closedErr
		if err == nil {
			err = ErrClosed
		}
	}
	if err != nil {
		c.out.Abandon(om)
		c.signalSpace()
		c.mu.Unlock()
		return wrapErr("publish", err)
	}
	return nil
}

// pumpLocked hands waiting messages to the connection, in order, as far as the in-flight
// window (ours and the broker's Receive Maximum [MQTT-4.9.0-2]) allows.
func (c *Client) pumpLocked() { c.pump(false) }

// pump is pumpLocked. With queueOnly it queues without starting the connection's writer and
// returns the connection, which the caller flushes once c.mu is released (Conn.Flush).
func (c *Client) pump(queueOnly bool) *mqttconn.Conn {
	conn := c.conn
	if conn == nil {
		return nil
	}
	send := conn.SendNow
	if queueOnly {
		send = func(p packet.Packet, done func(error)) error { return connfast.Queue(conn, p, done) }
	}
	gen := c.out.Gen()
	for {
		m, act := c.out.Next()
		switch act {
		case session.None:
			return conn
		case session.SendPubrel:
			conn.SendAck(packet.PUBREL, m.Pub.PacketID)
		case session.SendPublish:
			if !m.Ext.queued.IsZero() && !m.Pub.Dup {
				// A message that waited in the queue (offline, or behind the window) loses the
				// time it waited from its Message Expiry Interval, and is not sent once that is
				// used up: the broker would not deliver it anyway.
				left := int64(m.Pub.Props.MessageExpiryInterval) - int64(time.Since(m.Ext.queued)/time.Second)
				m.Ext.queued = time.Time{}
				if left <= 0 {
					if m.Pub.QoS == 0 {
						c.out.Written0(m, gen, ErrMessageExpired, false)
					} else {
						c.out.Failed(m, gen, ErrMessageExpired)
					}
					continue
				}
				m.Pub.Props.MessageExpiryInterval = uint32(left)
			}
			pub := m.Pub
			if c.cfg.TopicAliases > 0 && c.cfg.Version == packet.V5 {
				if c.outAlias == nil {
					c.outAlias = new(outAliases)
				}
				pub = c.outAlias.apply(gen, c.cfg.TopicAliases, c.caps.topicAliasMax, pub)
			}
			if m.Pub.QoS == 0 {
				send(pub, func(err error) { c.written0(m, gen, err) })
			} else {
				send(pub, func(err error) { c.writtenQoS(m, gen, err) })
			}
		}
	}
}

// written0 completes a QoS 0 message once written; a connection failure leaves it queued for
// the next connection (QoS 0 is never reported sent when it was not).
func (c *Client) written0(m *outMsg, gen uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out.Written0(m, gen, err, err != nil && isConnErr(err)) {
		c.pumpLocked()
	}
}

// writtenQoS fails a QoS 1/2 message that could not be encoded or is too large for the broker.
func (c *Client) writtenQoS(m *outMsg, gen uint64, err error) {
	if err == nil || isConnErr(err) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out.Failed(m, gen, err)
	c.pumpLocked()
}

// onDone is the session's completion of m, under c.mu: its record leaves the store and its
// token completes.
func (c *Client) onDone(m *outMsg, err error) {
	if m.Pub.QoS > 0 && c.store != nil {
		c.store.Delete(m.Seq())
	}
	c.signalRoom()
	m.Ext.complete(err)
}

// failAll completes every queued message with err (the client stops). Durable records stay in
// the store: the next process with this session sends them.
func (c *Client) failAll(err error) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.out.FailAll(func(m *outMsg) { m.Ext.complete(err) })
	c.closed = true
	c.signalSpace()
	c.signalState()
	return n
}
