// Packets from the broker: routing of each packet, inbound PUBLISH with its QoS 2 state, and
// the handlers a message goes to (delivery itself is dispatch.go).

package fennec

import (
	"fmt"
	"hash/maphash"
	"slices"

	"github.com/fennec-mqtt/fennec/internal/connfast"
	"github.com/fennec-mqtt/fennec/mqttconn"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/session"
)

// onPacket handles a packet from conn, on its reading goroutine.
func (c *Client) onPacket(conn *mqttconn.Conn, p packet.Packet) {
	switch p := p.(type) {
	case *packet.Publish:
		c.onPublish(conn, p)
	case *packet.OversizePublish:
		c.onOversize(conn, p)
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
		d.id = p.PacketID
		var deliver bool
		if deliver, overrun = c.admit(conn, p); !deliver {
			return
		}
	}
	// A lone message runs its handler here, on the reading goroutine (no hand-off on the round
	// trip); during a burst (more packets already buffered) the handler goroutine takes it, so
	// that reading and handling run in parallel.
	if connfast.Buffered(conn) == 0 && c.disp.deliverInline(d, conn) {
		return
	}
	c.queueDelivery(conn, d, overrun)
}

// admit records an inbound QoS 1 or 2 message in the session and says whether it is delivered
// to the application: not a duplicate of one delivered (answered with PUBREC again) or of one
// waiting for its handler, and not arrived while Disconnect finishes the handshakes under way.
// overrun reports a broker beyond our Receive Maximum.
func (c *Client) admit(conn *mqttconn.Conn, p *packet.Publish) (deliver, overrun bool) {
	id := p.PacketID
	var fp uint64
	if p.QoS == 2 {
		fp = c.fingerprint(p)
	}
	c.mu.Lock()
	unacked := c.in.Unacked()
	r, resent := c.in.Receive(id, byte(p.QoS), p.Dup, fp)
	if resent {
		c.noteResentAfterRelease(id, p.Topic)
	}
	switch r {
	case session.Rerec:
		c.mu.Unlock()
		conn.SendAck(packet.PUBREC, id) // a duplicate: delivered once already
		return false, false
	case session.Duplicate:
		c.mu.Unlock()
		return false, false // a duplicate of a message waiting for its handler; one ack follows
	}
	if c.stopping {
		// Disconnect is finishing the handshakes under way: a new message is neither
		// delivered nor acknowledged, so the broker keeps it for the session.
		c.in.Unpending(id)
		c.mu.Unlock()
		return false, false
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
	return true, overrun
}

// noteResentAfterRelease reports, c.mu held, a broker that sends again, as a duplicate, the
// QoS 2 message whose handshake this ID finished (PUBREL received, PUBCOMP sent): a broker that
// lost that state, such as mosquitto restarted from a persistence snapshot older than the
// handshake. The protocol says a PUBLISH after PUBCOMP is a new message [MQTT-4.3.3-9], so it is
// delivered again; it is counted and reported.
func (c *Client) noteResentAfterRelease(id uint16, topic string) {
	n := c.in.ResentAfterRelease
	if c.log != nil {
		c.log.Warn("mqtt broker resent a QoS 2 message after its PUBREL; delivering it again as the protocol requires", "packet_id", id, "topic", topic, "count", n)
	}
	c.noteLocked(fmt.Sprintf("broker resent QoS 2 packet ID %d (%q) after its PUBREL: delivered again as the protocol requires (%d so far)", id, topic, n))
}

// queueDelivery hands d to the handler goroutine. QoS 0 messages, MQTT 3.1.1 ones and those of
// a broker beyond our Receive Maximum are bounded by the handler queue: QoS 0 is dropped and
// counted while a handler waits for the broker, the rest stop the reader or, past the bound,
// end the connection.
func (c *Client) queueDelivery(conn *mqttconn.Conn, d delivery, overrun bool) {
	qos := d.msg.QoS
	bounded := qos == 0 || c.cfg.Version != packet.V5 || overrun
	switch r := c.disp.enqueue(d, bounded, conn); r {
	case queued:
	case droppedQoS0:
		if n := c.disp.droppedCount(); c.log != nil && n&(n-1) == 0 {
			// logged at the 1st, 2nd, 4th, 8th… drop: a flood does not flood the log
			c.log.Warn("mqtt QoS 0 message dropped: the handler queue is full while a handler waits for the broker", "topic", d.msg.Topic, "dropped", n)
		}
	default:
		if qos > 0 {
			c.mu.Lock()
			c.in.Unpending(d.id)
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

// onOversize handles a PUBLISH larger than Config.MaxPacketSize from an MQTT 3.1.1 broker
// (which cannot be told the limit), skipped by the connection as it arrived: it is counted
// (Stats.DroppedOversize), logged, and acknowledged as the protocol requires, so that the
// broker does not send it again; no handler sees it. Kept unacknowledged it would take one of
// the broker's in-flight places for good, and ending the connection would only have it sent
// again at the reconnect.
func (c *Client) onOversize(conn *mqttconn.Conn, p *packet.OversizePublish) {
	c.mu.Lock()
	c.droppedOversize++
	n := c.droppedOversize
	c.mu.Unlock()
	if c.log != nil && n&(n-1) == 0 { // the 1st, 2nd, 4th, 8th… drop
		c.log.Warn("mqtt message larger than MaxPacketSize dropped", "bytes", p.Size, "max_packet_size", p.Max,
			"qos", int(p.QoS), "dropped", n)
	}
	switch p.QoS {
	case 1:
		conn.SendAck(packet.PUBACK, p.PacketID)
	case 2:
		conn.SendAck(packet.PUBREC, p.PacketID) // its PUBREL is answered like any unknown one
	}
}
