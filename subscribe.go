// Subscriptions and the request/response exchanges that wait for a reply (SUBACK, UNSUBACK).

package fennec

import (
	"context"
	"errors"
	"fmt"

	"github.com/fennec-mqtt/fennec/mqttconn"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/topic"
)

// Subscribe subscribes to the filters in subs and routes matching messages to h. It waits for
// SUBACK within ctx (and, while offline, for the connection). Wildcards + and # route as the
// spec says; a message matching several of the client's filters is given to each of their
// handlers. Subscribing again to a filter replaces its handler.
//
// When the broker refuses a filter, Subscribe returns the SUBACK and a *ReasonError for the
// first refused filter; the refused filters are not kept. Subscriptions are sent again
// automatically when a reconnect finds that the broker lost the session.
func (c *Client) Subscribe(ctx context.Context, h MessageHandler, subs ...packet.Subscription) (*packet.Suback, error) {
	if err := checkSubscriptions(h, subs); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if err := c.unsupportedLocked(subs); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	subID, prev, mine := c.registerLocked(h, subs)
	c.mu.Unlock()
	all := map[string]bool{}
	for _, s := range subs {
		all[s.Filter] = true
	}
	resp, err := c.request(ctx, func(id uint16) packet.Packet { return subscribePacket(id, subID, subs) })
	if err != nil {
		c.restoreSubs(prev, all)
		return nil, wrapErr("subscribe", err)
	}
	sa, ok := resp.(*packet.Suback)
	if !ok {
		c.restoreSubs(prev, all)
		return nil, wrapErr("subscribe", &ProtocolError{Packet: resp.Type(), Msg: "answer to SUBSCRIBE is not SUBACK"})
	}
	if len(sa.ReasonCodes) != len(subs) {
		c.restoreSubs(prev, all)
		return sa, &ProtocolError{Packet: packet.SUBACK, Msg: fmt.Sprintf("SUBACK has %d reason codes for %d filters [MQTT-3.8.4-6]", len(sa.ReasonCodes), len(subs))}
	}
	failed, first := c.refused(sa, subs)
	if len(failed) > 0 {
		c.restoreSubs(prev, failed)
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

// checkSubscriptions checks a Subscribe call's arguments: a handler, at least one filter, valid
// filters and QoS.
func checkSubscriptions(h MessageHandler, subs []packet.Subscription) error {
	if len(subs) == 0 {
		return errors.New("fennec: subscribe: no topic filter [MQTT-3.8.3-2]")
	}
	if h == nil {
		return errors.New("fennec: subscribe: nil handler")
	}
	for _, s := range subs {
		if err := validFilter(s.Filter); err != nil {
			return err
		}
		if s.QoS > 2 {
			return fmt.Errorf("fennec: subscribe %q: QoS %d is not allowed", s.Filter, s.QoS)
		}
	}
	return nil
}

// unsupportedLocked fails a subscription the broker said in CONNACK it does not support, here
// rather than with a DISCONNECT (0xA2, 0x9E) that would end the connection (MQTT 5.0 section
// 3.2.2.3). Called with c.mu held.
func (c *Client) unsupportedLocked(subs []packet.Subscription) error {
	if c.conn == nil || c.cfg.Version != packet.V5 {
		return nil
	}
	for _, s := range subs {
		if topic.IsShared(s.Filter) && c.caps.noShared {
			return fmt.Errorf("%w: shared subscriptions (%q; Shared Subscription Available 0)", ErrNotSupported, s.Filter)
		}
		if topic.HasWildcard(s.Filter) && c.caps.noWildcard {
			return fmt.Errorf("%w: wildcard subscriptions (%q; Wildcard Subscription Available 0)", ErrNotSupported, s.Filter)
		}
	}
	return nil
}

// registerLocked records the subscriptions with handler h before they are sent, and returns
// their Subscription Identifier (0: none), the subscriptions they replace by filter, and the new
// records. Called with c.mu held.
//
// MQTT 5: each Subscribe call gets a Subscription Identifier, unless the broker said it has
// none, so that a message matching overlapping filters (a/# and a/+), which the broker sends
// once per subscription, reaches each subscription's handler once.
func (c *Client) registerLocked(h MessageHandler, subs []packet.Subscription) (uint32, map[string]*subscription, []*subscription) {
	var subID uint32
	if c.cfg.Version == packet.V5 && !c.caps.noSubID {
		c.nextSubID = c.nextSubID%268435455 + 1 // 1 .. 268,435,455 (MQTT 5.0 section 3.8.2.1.2)
		subID = c.nextSubID
	}
	prev := map[string]*subscription{}
	mine := make([]*subscription, len(subs))
	if c.subs == nil {
		c.subs = map[string]*subscription{}
	}
	for i, s := range subs {
		if old, ok := c.subs[s.Filter]; ok {
			prev[s.Filter] = old
		} else {
			c.subOrder = append(c.subOrder, s.Filter)
		}
		mine[i] = &subscription{sub: s, handler: h, subID: subID}
		c.subs[s.Filter] = mine[i]
	}
	return subID, prev, mine
}

// restoreSubs puts back, for each of filters, the subscription it replaced (prev), or removes
// it when it replaced none.
func (c *Client) restoreSubs(prev map[string]*subscription, filters map[string]bool) {
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

// refused returns the filters the SUBACK refuses and the error of the first of them.
func (c *Client) refused(sa *packet.Suback, subs []packet.Subscription) (map[string]bool, error) {
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
	return failed, first
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
		c.awaitLocked(id, ch)
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
