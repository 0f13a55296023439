package broker

import (
	"sort"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Receive Maximum at reconnect.
//
// mochi (v2.7.9) re-sends every stored message of a session at once when a client reconnects,
// whatever the client's Receive Maximum [MQTT-3.3.4-9]; a client that counts its unfinished
// QoS 2 messages closes the connection (mosquitto's clients: "protocol error"). Its own
// mechanism for messages beyond the Receive Maximum (a mark, Expiry −1, on messages stored
// while the send quota is used up, and one marked message sent after each packet read while
// the quota allows) sends a marked message and forgets it, before it is acknowledged.
//
// For an MQTT 5 client that states a Receive Maximum, the broker therefore:
//   - at the takeover, takes the stored PUBLISH packets beyond the Receive Maximum (in the
//     order they were stored, PUBREL packets counting first) out of the table mochi is about to
//     re-send, and puts them back, marked, once mochi's re-send is done;
//   - keeps mochi's send quota at zero while marked messages wait, so that a message routed
//     to the client meanwhile is stored marked too instead of being sent before them
//     [MQTT-4.6.0-6], and mochi's send-and-forget never runs;
//   - after each acknowledgement (and each packet read), sends the marked messages in their
//     order while fewer than Receive Maximum PUBLISH and PUBREL packets await acknowledgement,
//     keeping them in the session until they are acknowledged.
//
// A message waiting marked stays in the session: if the client leaves again, the next
// reconnect re-sends it like any other stored message.

// receiveMaximum is the number of unacknowledged QoS 1 and 2 messages cl accepts when the
// broker limits them, or 0 (MQTT 3.1.1, or no Receive Maximum in CONNECT: mochi does not limit
// either, and 65 535 is beyond what a session can hold).
func receiveMaximum(cl *mqtt.Client) int {
	if cl.Properties.ProtocolVersion < 5 {
		return 0
	}
	return int(cl.Properties.Props.ReceiveMaximum)
}

// holdBeyond returns the positions in es (a session's outgoing PUBLISH and PUBREL packets in
// their order) of the PUBLISH packets to hold back for a client with Receive Maximum max.
func holdBeyond(types []byte, max int) []int {
	if max <= 0 {
		return nil
	}
	budget := max
	for _, t := range types {
		if t == packets.Pubrel {
			budget--
		}
	}
	var held []int
	for i, t := range types {
		if t != packets.Publish {
			continue
		}
		if budget > 0 {
			budget--
			continue
		}
		held = append(held, i)
	}
	return held
}

// restoreHeld puts messages held back from a re-send that never completed (the connection
// failed before mochi finished it) into cl's table again.
func (h *hook) restoreHeld(cl *mqtt.Client) {
	s := h.session(cl)
	if s == nil {
		return
	}
	s.mu.Lock()
	held := s.held
	s.held = nil
	s.mu.Unlock()
	h.putBack(cl, held, false)
}

// heldMsg is a stored message held back from mochi's re-send, with its place in the order
// (recorded apart: a message routed to the new connection meanwhile may get its identifier).
type heldMsg struct {
	pk  packets.Packet
	seq uint64
}

// putBack stores held messages in cl's table, marked to be sent when the Receive Maximum
// allows when mark is set. A packet identifier taken meanwhile (a message routed to the new
// connection before its re-send ended) is replaced by a free one.
func (h *hook) putBack(cl *mqtt.Client, held []heldMsg, mark bool) {
	if len(held) == 0 {
		return
	}
	o := h.orderOf(cl.ID, true)
	for _, m := range held {
		pk := m.pk
		if cur, taken := cl.State.Inflight.Get(pk.PacketID); taken && !sameMessage(cur, pk) {
			id, err := cl.NextPacketID()
			if err != nil {
				atomic.AddInt64(&h.b.srv.Info.Inflight, -1)
				h.b.log.Warn("stored message dropped: no free packet identifier", "client", cl.ID, "topic", pk.TopicName)
				continue
			}
			pk.PacketID = uint16(id)
		}
		if mark {
			pk.Expiry = -1
		}
		o.mu.Lock()
		if m.seq != 0 {
			o.seq[pk.PacketID] = m.seq
		}
		o.mu.Unlock()
		cl.State.Inflight.Set(pk)
	}
}

// drain sends cl's marked messages, in their order, while cl's Receive Maximum allows, and
// keeps mochi's send quota at zero while some still wait. With sync, it also sets the quota
// when none wait (after mochi's re-send, which does not count what it sends). Called from cl's
// own goroutine (after the re-send, and after each packet read) and from mochi's write loop
// when holdOvertaking has held a message back.
func (h *hook) drain(cl *mqtt.Client, sync bool) {
	max := receiveMaximum(cl)
	if max <= 0 || cl.IsTakenOver() || cl.Closed() {
		return
	}
	s := h.session(cl)
	if s == nil {
		return
	}
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	all := cl.State.Inflight.GetAll(false)
	var waiting []packets.Packet
	inflight := 0
	for _, pk := range all {
		switch {
		case pk.FixedHeader.Type != packets.Publish && pk.FixedHeader.Type != packets.Pubrel:
		case pk.Expiry < 0:
			waiting = append(waiting, pk)
		default:
			inflight++
		}
	}
	if len(waiting) == 0 && !sync {
		return
	}
	o := h.orderOf(cl.ID, true)
	o.mu.Lock()
	seq := func(pk packets.Packet) uint64 { return o.seq[pk.PacketID] }
	sort.SliceStable(waiting, func(i, j int) bool {
		si, sj := seq(waiting[i]), seq(waiting[j])
		if si != sj {
			return si < sj
		}
		return waiting[i].Created < waiting[j].Created
	})
	o.mu.Unlock()
	now := time.Now().Unix()
	sent := 0
	for _, pk := range waiting {
		if inflight >= max {
			break
		}
		was := pk
		pk.Expiry = h.expiry(pk)
		if pk.Expiry > 0 && pk.Expiry < now && pk.Properties.MessageExpiryInterval > 0 {
			if cl.State.Inflight.Delete(pk.PacketID) { // expired while waiting [MQTT-3.3.2-5]
				atomic.AddInt64(&h.b.srv.Info.Inflight, -1)
				h.forget(cl.ID, pk.PacketID)
			}
			sent++
			continue
		}
		if cur, ok := cl.State.Inflight.Get(pk.PacketID); !ok || !sameMessage(cur, was) || cur.Expiry >= 0 {
			sent++
			continue // changed meanwhile
		}
		// Written while still marked, so that holdOvertaking stops a newer message written
		// at the same moment by mochi's write loop; then unmarked, awaiting its acknowledgement.
		s.writing.Store(uint32(pk.PacketID) + 1)
		err := cl.WritePacket(pk)
		s.writing.Store(0)
		if err != nil {
			break // stored: re-sent at the next connection; the quota stays zero (below)
		}
		if cur, ok := cl.State.Inflight.Get(pk.PacketID); ok && sameMessage(cur, was) && cur.Expiry < 0 {
			cl.State.Inflight.Set(pk)
		}
		inflight++
		sent++
	}
	// mochi's quota: zero while messages wait, so that new ones are stored marked behind them
	// and mochi's own send-and-forget of a marked message (after this hook, when its quota
	// allows) never runs; afterwards what the Receive Maximum leaves.
	for range max {
		cl.State.Inflight.DecreaseSendQuota()
	}
	if sent == len(waiting) {
		for range max - inflight {
			cl.State.Inflight.IncreaseSendQuota()
		}
	}
}

func (h *hook) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, err error) {
	h.drain(cl, false)
}

// holdOvertaking is called for each packet mochi writes to cl. A new QoS 1 or 2 PUBLISH that
// mochi's write loop sends at once (its send quota allowed it: routed during mochi's re-send,
// or in the instant between an acknowledgement and the broker setting the quota back to zero)
// while older messages still wait for cl's Receive Maximum is not written: it is marked to
// wait behind them [MQTT-4.6.0-6], and the packet returned cannot be encoded, so the write loop
// drops it (mochi logs that at debug level).
func (h *hook) holdOvertaking(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos == 0 || pk.FixedHeader.Dup ||
		pk.Expiry < 0 || receiveMaximum(cl) <= 0 {
		return pk
	}
	s := h.session(cl)
	if s == nil || s.writing.Load() == uint32(pk.PacketID)+1 {
		return pk // drain's own write
	}
	s.mu.Lock()
	resending := s.resending // the stored messages come first, also those held back
	s.mu.Unlock()
	older := resending
	if !older {
		waiting := cl.State.Inflight.GetAll(true)
		if len(waiting) == 0 {
			return pk
		}
		o := h.orderOf(cl.ID, false)
		if o == nil {
			return pk
		}
		o.mu.Lock()
		mine := o.seq[pk.PacketID]
		for _, w := range waiting {
			if s := o.seq[w.PacketID]; mine != 0 && s != 0 && s < mine {
				older = true
				break
			}
		}
		o.mu.Unlock()
	}
	if !older {
		return pk
	}
	cur, ok := cl.State.Inflight.Get(pk.PacketID)
	if !ok || !sameMessage(cur, pk) || cur.Expiry < 0 {
		return pk
	}
	cur.Expiry = -1
	cl.State.Inflight.Set(cur)
	h.b.log.Debug("message held back behind older ones waiting for the client's Receive Maximum", "client", cl.ID, "topic", pk.TopicName)
	if !resending {
		// drain may have counted it as sent: a place it will not free.
		h.drain(cl, false)
	}
	pk.FixedHeader.Type = packets.Reserved
	return pk
}
