package fennec

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
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
	if m == nil {
		return nil, errors.New("fennec: nil message")
	}
	if err := validTopicName(m.Topic); err != nil {
		return nil, err
	}
	if m.QoS > 2 {
		return nil, fmt.Errorf("fennec: QoS %d is not allowed [MQTT-3.3.1-4]", m.QoS)
	}
	if m.Props.Has(packet.PropPayloadFormat) && m.Props.PayloadFormat == 1 && !utf8.Valid(m.Payload) {
		// Payload Format Indicator 1 says the payload is UTF-8 (MQTT 5.0 section 3.3.2.3.2); a
		// receiver may refuse it as 0x99 Payload format invalid.
		return nil, fmt.Errorf("fennec: publish to %q: Payload Format Indicator 1 (UTF-8), but the payload is not valid UTF-8", m.Topic)
	}
	// One allocation for the queue entry, its packet and its token.
	om := &outMsg{P: packet.Publish{QoS: m.QoS, Retain: m.Retain, Topic: m.Topic, Payload: m.Payload}}
	om.Pub = &om.P
	om.Ext.disp = &c.disp
	pub, tok := om.Pub, &om.Ext
	if c.cfg.Version == packet.V5 {
		pub.Props = m.Props
		if pub.Props.Has(packet.PropMessageExpiry) {
			tok.queued = time.Now()
		}
	}
	waiting := false
	defer func() { c.disp.endWait(waiting) }()
	c.mu.Lock()
	for {
		if c.closed {
			err := c.closedErr
			c.mu.Unlock()
			if err == nil {
				err = ErrClosed
			}
			return nil, err
		}
		if ack := c.connack; ack != nil && c.conn != nil && c.cfg.Version == packet.V5 {
			if ack.Props.Has(packet.PropMaximumQoS) && byte(m.QoS) > ack.Props.MaximumQoS {
				c.mu.Unlock()
				return nil, fmt.Errorf("%w: QoS %d (its Maximum QoS is %d) [MQTT-3.2.2-11]", ErrNotSupported, m.QoS, ack.Props.MaximumQoS)
			}
			if m.Retain && ack.Props.Has(packet.PropRetainAvailable) && ack.Props.RetainAvailable == 0 {
				c.mu.Unlock()
				return nil, fmt.Errorf("%w: retained messages (Retain Available 0) [MQTT-3.2.2-14]", ErrNotSupported)
			}
		}
		if c.out.Room(m.QoS) {
			break
		}
		if c.conn == nil {
			c.mu.Unlock()
			return nil, ErrQueueFull
		}
		if c.spaceCh == nil {
			c.spaceCh = make(chan struct{})
		}
		ch := c.spaceCh
		c.mu.Unlock()
		if !waiting {
			waiting = c.disp.beginWait()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.mu.Lock()
	}
	c.out.Take(om)
	if c.store != nil && m.QoS > 0 {
		// The message is durable before Publish accepts it. The write runs outside c.mu, its
		// place in the queue reserved: a slow disk holds back this publisher only, not the
		// others, the reader or the acknowledgements, and a durable store can commit
		// concurrent publishes with one fsync.
		c.mu.Unlock()
		data, err := session.MarshalPublish(pub)
		if err == nil {
			err = c.store.Put(session.Record{Seq: om.Seq(), PacketID: pub.PacketID, Data: data})
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
			return nil, wrapErr("publish", err)
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
	return tok, nil
}

// Subscribe subscribes to the filters in subs and routes matching messages to h. It waits for
// SUBACK within ctx (and, while offline, for the connection). Wildcards + and # route as the
// spec says; a message matching several of the client's filters is given to each of their
// handlers. Subscribing again to a filter replaces its handler.
//
// When the broker refuses a filter, Subscribe returns the SUBACK and a *ReasonError for the
// first refused filter; the refused filters are not kept. Subscriptions are sent again
// automatically when a reconnect finds that the broker lost the session.
func (c *Client) Subscribe(ctx context.Context, h MessageHandler, subs ...packet.Subscription) (*packet.Suback, error) {
	if len(subs) == 0 {
		return nil, errors.New("fennec: subscribe: no topic filter [MQTT-3.8.3-2]")
	}
	if h == nil {
		return nil, errors.New("fennec: subscribe: nil handler")
	}
	for _, s := range subs {
		if err := validFilter(s.Filter); err != nil {
			return nil, err
		}
		if s.QoS > 2 {
			return nil, fmt.Errorf("fennec: subscribe %q: QoS %d is not allowed", s.Filter, s.QoS)
		}
	}
	c.mu.Lock()
	if ack := c.connack; ack != nil && c.conn != nil && c.cfg.Version == packet.V5 {
		// What the broker said in CONNACK it does not support fails here, not with a
		// DISCONNECT (0xA2, 0x9E) that would end the connection (MQTT 5.0 section 3.2.2.3).
		for _, s := range subs {
			shared := topic.IsShared(s.Filter)
			if shared && ack.Props.Has(packet.PropSharedSubscriptionAvailable) && ack.Props.SharedSubscriptionAvailable == 0 {
				c.mu.Unlock()
				return nil, fmt.Errorf("%w: shared subscriptions (%q; Shared Subscription Available 0)", ErrNotSupported, s.Filter)
			}
			if topic.HasWildcard(s.Filter) && ack.Props.Has(packet.PropWildcardSubscriptionAvailable) && ack.Props.WildcardSubscriptionAvailable == 0 {
				c.mu.Unlock()
				return nil, fmt.Errorf("%w: wildcard subscriptions (%q; Wildcard Subscription Available 0)", ErrNotSupported, s.Filter)
			}
		}
	}
	// MQTT 5: each Subscribe call gets a Subscription Identifier, unless the broker said it has
	// none, so that a message matching overlapping filters (a/# and a/+), which the broker sends
	// once per subscription, reaches each subscription's handler once.
	var subID uint32
	if c.cfg.Version == packet.V5 && !(c.connack != nil && c.connack.Props.Has(packet.PropSubscriptionIdentifiersAvailable) &&
		c.connack.Props.SubscriptionIdentifiersAvailable == 0) {
		c.nextSubID = c.nextSubID%268435455 + 1 // 1 .. 268,435,455 (MQTT 5.0 section 3.8.2.1.2)
		subID = c.nextSubID
	}
	prev := map[string]*subscription{}
	mine := make([]*subscription, len(subs))
	for i, s := range subs {
		if old, ok := c.subs[s.Filter]; ok {
			prev[s.Filter] = old
		} else {
			c.subOrder = append(c.subOrder, s.Filter)
		}
		mine[i] = &subscription{sub: s, handler: h, subID: subID}
		c.subs[s.Filter] = mine[i]
	}
	c.mu.Unlock()
	undo := func(filters map[string]bool) {
		c.mu.Lock()
		defer c.mu.Unlock()
		for f := range filters {
			if old, ok := prev[f]; ok {
				c.subs[f] = old
			} else {
				c.removeSubLocked(f)
			}
		}
	}
	all := map[string]bool{}
	for _, s := range subs {
		all[s.Filter] = true
	}
	resp, err := c.request(ctx, func(id uint16) packet.Packet { return subscribePacket(id, subID, subs) })
	if err != nil {
		undo(all)
		return nil, wrapErr("subscribe", err)
	}
	sa, ok := resp.(*packet.Suback)
	if !ok {
		undo(all)
		return nil, wrapErr("subscribe", &ProtocolError{Packet: resp.Type(), Msg: "answer to SUBSCRIBE is not SUBACK"})
	}
	if len(sa.ReasonCodes) != len(subs) {
		undo(all)
		return sa, &ProtocolError{Packet: packet.SUBACK, Msg: fmt.Sprintf("SUBACK has %d reason codes for %d filters [MQTT-3.8.4-6]", len(sa.ReasonCodes), len(subs))}
	}
	var first error
	failed := map[string]bool{}
	for i, rc := range sa.ReasonCodes {
		if rc >= 0x80 {
			failed[subs[i].Filter] = true
			if first == nil {
				first = wrapErr(fmt.Sprintf("subscribe %q", subs[i].Filter),
					&ReasonError{Packet: packet.SUBACK, Code: rc, Version: c.cfg.Version, Reason: sa.Props.ReasonString})
			}
		}
	}
	if len(failed) > 0 {
		undo(failed)
	}
	c.mu.Lock()
	for _, sb := range mine {
		if !failed[sb.sub.Filter] {
			sb.acked = true
		}
	}
	c.mu.Unlock()
	return sa, first
}

// subscribePacket is a SUBSCRIBE with packet ID id carrying the Subscription Identifier subID
// (0: none).
func subscribePacket(id uint16, subID uint32, subs []packet.Subscription) *packet.Subscribe {
	sp := &packet.Subscribe{PacketID: id, Subscriptions: subs}
	if subID != 0 {
		sp.Props.SubscriptionIdentifiers = []uint32{subID}
	}
	return sp
}

func (c *Client) removeSubLocked(f string) {
	delete(c.subs, f)
	for i, s := range c.subOrder {
		if s == f {
			c.subOrder = append(c.subOrder[:i], c.subOrder[i+1:]...)
			break
		}
	}
}

// Unsubscribe removes the filters and their handlers, waiting for UNSUBACK within ctx.
func (c *Client) Unsubscribe(ctx context.Context, filters ...string) error {
	if len(filters) == 0 {
		return errors.New("fennec: unsubscribe: no topic filter [MQTT-3.10.3-2]")
	}
	for _, f := range filters {
		if err := validFilter(f); err != nil {
			return err
		}
	}
	resp, err := c.request(ctx, func(id uint16) packet.Packet {
		return &packet.Unsubscribe{PacketID: id, Filters: filters}
	})
	c.mu.Lock()
	for _, f := range filters {
		c.removeSubLocked(f)
	}
	c.mu.Unlock()
	if err != nil {
		return wrapErr("unsubscribe", err)
	}
	if ua, ok := resp.(*packet.Unsuback); ok {
		for i, rc := range ua.ReasonCodes {
			// 0x11 No subscription existed is a success for the caller's purpose.
			if rc >= 0x80 && i < len(filters) {
				return wrapErr(fmt.Sprintf("unsubscribe %q", filters[i]),
					&ReasonError{Packet: packet.UNSUBACK, Code: rc, Version: c.cfg.Version, Reason: ua.Props.ReasonString})
			}
		}
	}
	return nil
}

// request sends a SUBSCRIBE or UNSUBSCRIBE built by build and waits for its answer, sending it
// again on the next connection if the connection drops first.
func (c *Client) request(ctx context.Context, build func(id uint16) packet.Packet) (packet.Packet, error) {
	waiting := c.disp.beginWait()
	defer c.disp.endWait(waiting)
	for {
		if err := c.AwaitConnection(ctx); err != nil {
			return nil, err
		}
		c.mu.Lock()
		conn := c.conn
		if conn == nil {
			c.mu.Unlock()
			continue
		}
		id, ok := c.out.IDs().Take()
		if !ok {
			c.mu.Unlock()
			return nil, errors.New("fennec: all 65,535 packet identifiers in use")
		}
		ch := make(chan packet.Packet, 1)
		c.requests[id] = ch
		c.mu.Unlock()
		if err := conn.SendNow(build(id), nil); err != nil {
			c.mu.Lock()
			if c.requests[id] == ch {
				delete(c.requests, id)
				c.out.IDs().Free(id)
			}
			c.mu.Unlock()
			continue
		}
		select {
		case p, ok := <-ch:
			if ok {
				return p, nil
			}
			// connection lost: try again on the next one
		case <-ctx.Done():
			c.mu.Lock()
			if c.requests[id] == ch {
				delete(c.requests, id)
				c.out.IDs().Free(id)
			}
			c.mu.Unlock()
			return nil, ctx.Err()
		}
	}
}

// onPacket handles a packet from conn, on its reading goroutine.
func (c *Client) onPacket(conn *mqttconn.Conn, p packet.Packet) {
	switch p := p.(type) {
	case *packet.Publish:
		c.onPublish(conn, p)
	case *packet.Puback:
		c.onAck(conn, packet.PUBACK, p.PacketID, p.ReasonCode, p.Props.ReasonString)
	case *packet.Pubrec:
		c.onAck(conn, packet.PUBREC, p.PacketID, p.ReasonCode, p.Props.ReasonString)
	case *packet.Pubcomp:
		c.onAck(conn, packet.PUBCOMP, p.PacketID, p.ReasonCode, p.Props.ReasonString)
	case *packet.Pubrel:
		c.onPubrel(conn, p)
	case *packet.Suback:
		c.onResponse(conn, p.PacketID, p)
	case *packet.Unsuback:
		c.onResponse(conn, p.PacketID, p)
	case *packet.Pingresp:
	case *packet.Disconnect:
		if c.cfg.Version == packet.V5 {
			re := &ReasonError{Packet: packet.DISCONNECT, Code: p.ReasonCode, Version: packet.V5, Reason: p.Props.ReasonString, ServerReference: p.Props.ServerReference}
			c.noteServerReference(re)
			conn.Close(re)
			return
		}
		conn.Fail(&ProtocolError{Packet: packet.DISCONNECT, Msg: "broker sent DISCONNECT, which MQTT 3.1.1 does not allow"})
	case *packet.Auth:
		if c.cfg.Authenticator == nil {
			conn.Fail(&ProtocolError{Packet: packet.AUTH, Msg: "broker sent AUTH, but no authentication method was requested [MQTT-4.12.0-6]"})
			return
		}
		c.onAuth(conn, p)
	default:
		conn.Fail(&ProtocolError{Packet: p.Type(), Msg: fmt.Sprintf("broker sent %v, which only a client may send", p.Type())})
	}
}

func (c *Client) onResponse(conn *mqttconn.Conn, id uint16, p packet.Packet) {
	c.mu.Lock()
	ch, ok := c.requests[id]
	if ok {
		delete(c.requests, id)
		c.out.IDs().Free(id)
	}
	c.mu.Unlock()
	if !ok {
		conn.Fail(&ProtocolError{Packet: p.Type(), Msg: fmt.Sprintf("%v for packet ID %d, which has no request waiting", p.Type(), id)})
		return
	}
	ch <- p
}

func (c *Client) onAck(conn *mqttconn.Conn, t packet.Type, id uint16, rc packet.ReasonCode, reason string) {
	var rerr error
	if rc >= 0x80 {
		rerr = &ReasonError{Packet: t, Code: rc, Version: c.cfg.Version, Reason: reason}
	}
	c.mu.Lock()
	res := session.AckViolation
	var m *outMsg
	if c.conn == conn {
		m, res = c.out.Ack(t, id, rc, rerr)
	}
	switch res {
	case session.AckViolation:
		c.mu.Unlock()
		conn.Fail(&ProtocolError{Packet: t, Msg: fmt.Sprintf("%v for packet ID %d, which has no message in that state", t, id)})
	case session.AckReleased:
		pub, seq := m.Pub, m.Seq()
		c.mu.Unlock()
		if c.store != nil {
			// Durable before PUBREL, written outside c.mu: after a crash, only PUBREL is resent
			// and the message is not published twice [MQTT-4.3.3-3].
			if data, err := session.MarshalPublish(pub); err == nil {
				if err := c.store.Put(session.Record{Seq: seq, PacketID: id, Released: true, Data: data}); err != nil && c.log != nil {
					c.log.Error("mqtt session store", "err", err)
				}
			}
		}
		conn.SendAck(packet.PUBREL, id)
	default:
		c.pumpLocked()
		c.mu.Unlock()
	}
}

func (c *Client) onPubrel(conn *mqttconn.Conn, p *packet.Pubrel) {
	c.mu.Lock()
	known := c.in.Release(p.PacketID)
	c.mu.Unlock()
	if known {
		if c.store != nil {
			c.store.DeleteInbound(p.PacketID)
		}
	} else if c.cfg.Version == packet.V5 {
		conn.SendNow(&packet.Pubcomp{PacketID: p.PacketID, ReasonCode: packet.PacketIdentifierNotFound}, nil)
		return
	}
	conn.SendAck(packet.PUBCOMP, p.PacketID)
}

func (c *Client) onPublish(conn *mqttconn.Conn, p *packet.Publish) {
	if p.Props.Has(packet.PropTopicAlias) {
		topic, err := c.resolveAlias(conn, p)
		if err != nil {
			conn.Fail(err)
			return
		}
		p.Topic = topic
		p.Props.Clear(packet.PropTopicAlias) // the application sees the topic, not the alias
	}
	msg := &Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, Dup: p.Dup, Props: p.Props, PacketID: p.PacketID}
	d := delivery{msg: msg}
	overrun := false
	if p.QoS > 0 {
		id := p.PacketID
		d.id = id
		var fp uint64
		if p.QoS == 2 {
			fp = c.fingerprint(p)
		}
		c.mu.Lock()
		unacked := c.in.Unacked()
		r, resent := c.in.Receive(id, byte(p.QoS), p.Dup, fp)
		if resent {
			// The broker sends again, as a duplicate, the message whose handshake this ID
			// finished (PUBREL received, PUBCOMP sent): a broker that lost that state, such as
			// mosquitto restarted from a persistence snapshot older than the handshake. The
			// protocol says a PUBLISH after PUBCOMP is a new message [MQTT-4.3.3-9], so it is
			// delivered again; it is counted and reported.
			n := c.in.ResentAfterRelease
			if c.log != nil {
				c.log.Warn("mqtt broker resent a QoS 2 message after its PUBREL; delivering it again as the protocol requires", "packet_id", id, "topic", p.Topic, "count", n)
			}
			c.noteLocked(fmt.Sprintf("broker resent QoS 2 packet ID %d (%q) after its PUBREL: delivered again as the protocol requires (%d so far)", id, p.Topic, n))
		}
		switch r {
		case session.Rerec:
			c.mu.Unlock()
			conn.SendAck(packet.PUBREC, id) // a duplicate: delivered once already
			return
		case session.Duplicate:
			c.mu.Unlock()
			return // a duplicate of a message waiting for its handler; one ack follows
		}
		if c.stopping {
			// Disconnect is finishing the handshakes under way: a new message is neither
			// delivered nor acknowledged, so the broker keeps it for the session.
			c.in.Unpending(id)
			c.mu.Unlock()
			return
		}
		if c.cfg.Version == packet.V5 && unacked >= int(c.cfg.ReceiveMaximum) {
			// The broker exceeds our Receive Maximum [MQTT-3.3.4-9]. mosquitto 2.0.11 does so
			// when it releases queued messages while our acknowledgements wait behind a slow
			// handler. Rather than a DISCONNECT 0x93 loop with the reference broker, the excess
			// is bounded like QoS 0: the reader stops reading when the handler queue is full.
			overrun = true
			if !c.warnedRecvMax && c.log != nil {
				c.warnedRecvMax = true
				c.log.Warn("mqtt broker exceeds our Receive Maximum; applying back-pressure", "receive_maximum", c.cfg.ReceiveMaximum, "unacknowledged", unacked+1)
			}
		}
		c.mu.Unlock()
	}
	// A lone message runs its handler here, on the reading goroutine (no hand-off on the round
	// trip); during a burst (more packets already buffered) the handler goroutine takes it, so
	// that reading and handling run in parallel.
	if connfast.Buffered(conn) == 0 && c.disp.deliverInline(d, conn) {
		return
	}
	bounded := p.QoS == 0 || c.cfg.Version != packet.V5 || overrun
	switch r := c.disp.enqueue(d, bounded, conn); r {
	case queued:
	case droppedQoS0:
		if n := c.disp.droppedCount(); c.log != nil && n&(n-1) == 0 {
			// logged at the 1st, 2nd, 4th, 8th… drop: a flood does not flood the log
			c.log.Warn("mqtt QoS 0 message dropped: the handler queue is full while a handler waits for the broker", "topic", p.Topic, "dropped", n)
		}
	default:
		if p.QoS > 0 {
			c.mu.Lock()
			c.in.Unpending(p.PacketID)
			c.mu.Unlock()
		}
		if r == overflow {
			if overrun {
				conn.Fail(&mqttconn.ReceiveMaximumError{Max: c.cfg.ReceiveMaximum})
			} else {
				conn.Close(errInboundOverflow)
			}
		}
	}
}

// handled acknowledges an inbound QoS 1/2 message after its handlers returned.
func (c *Client) handled(d delivery) {
	if d.msg.QoS == 0 {
		return
	}
	c.mu.Lock()
	if !c.in.Handled(d.id, byte(d.msg.QoS)) {
		c.mu.Unlock()
		return // the session was lost meanwhile: nothing to acknowledge
	}
	conn := c.conn
	c.mu.Unlock()
	if d.msg.QoS == 1 {
		if conn != nil {
			conn.SendAck(packet.PUBACK, d.id)
		}
		return
	}
	if c.store != nil {
		if err := c.store.PutInbound(d.id); err != nil && c.log != nil {
			c.log.Error("mqtt session store", "err", err)
		}
	}
	if conn != nil {
		conn.SendAck(packet.PUBREC, d.id)
	}
}

// fingerprint identifies a QoS 2 message's topic and payload, to recognise a broker that sends
// it again after its handshake finished.
func (c *Client) fingerprint(p *packet.Publish) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(p.Topic)
	h.WriteByte(0)
	h.Write(p.Payload)
	return h.Sum64()
}

// noteLocked reports an event in the trace (fennec --debug), if one is set.
func (c *Client) noteLocked(s string) {
	if c.cfg.Trace != nil {
		c.cfg.Trace(TraceEvent{Note: s})
	}
}

// route appends to hs the handlers whose filters match topic.
func (c *Client) route(hs []MessageHandler, m *Message) []MessageHandler {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := m.Props.SubscriptionIdentifiers
	// A copy that carries Subscription Identifiers was sent for those subscriptions only; a
	// copy without goes to the matching subscriptions that have none (a broker that sends one
	// copy per subscription sends the others their own). A broker that ignores identifiers
	// sends none at all: then every matching subscription gets it, as on 3.1.1.
	for pass := 0; pass < 2 && len(hs) == 0; pass++ {
		for _, f := range c.subOrder {
			sb := c.subs[f]
			if !matchFilter(f, m.Topic) {
				continue
			}
			switch {
			case pass == 1, c.cfg.Version != packet.V5:
			case len(ids) > 0 && !slices.Contains(ids, sb.subID):
				continue
			case len(ids) == 0 && sb.subID != 0:
				continue
			}
			hs = append(hs, sb.handler)
		}
		if len(ids) > 0 {
			break // sent for subscriptions we no longer have: the default handler, below
		}
	}
	if len(hs) == 0 && c.cfg.DefaultHandler != nil {
		hs = append(hs, c.cfg.DefaultHandler)
	}
	return hs
}

// resolveAlias maps a Topic Alias the broker set to its topic: a PUBLISH with a topic and an
// alias sets the alias, one with an alias alone uses it [MQTT-3.3.2-12]. The aliases are those
// of this connection only [MQTT-3.3.2-7].
func (c *Client) resolveAlias(conn *mqttconn.Conn, p *packet.Publish) (string, error) {
	a := p.Props.TopicAlias
	if max := c.cfg.TopicAliasMaximum; max == 0 {
		return "", &ProtocolError{Packet: packet.PUBLISH, Reason: packet.TopicAliasInvalid,
			Msg: "broker used a Topic Alias though this client announced Topic Alias Maximum 0 [MQTT-3.3.2-9]"}
	} else if a == 0 || a > max {
		return "", &ProtocolError{Packet: packet.PUBLISH, Reason: packet.TopicAliasInvalid,
			Msg: fmt.Sprintf("broker used Topic Alias %d; this client allows 1 to %d [MQTT-3.3.2-9]", a, max)}
	}
	if c.aliasConn != conn {
		c.aliasConn, c.aliases = conn, map[uint16]string{}
	}
	if p.Topic != "" {
		c.aliases[a] = p.Topic
		return p.Topic, nil
	}
	t, ok := c.aliases[a]
	if !ok {
		return "", &ProtocolError{Packet: packet.PUBLISH, Reason: packet.TopicAliasInvalid,
			Msg: fmt.Sprintf("broker used Topic Alias %d before it set it on this connection [MQTT-3.3.2-12]", a)}
	}
	return t, nil
}
