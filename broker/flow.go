package broker

import (
	"errors"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Receive Maximum: the broker's own delivery queue.
//
// mochi (v2.7.9) limits what it sends an MQTT 5 client to the client's Receive Maximum with a
// send quota, a mark (Expiry −1) on messages stored while the quota is used up, and, after each
// packet the client sends, Inflight.NextImmediate, which sends one marked message and forgets it
// before it is acknowledged. NextImmediate takes the table's read lock and then calls GetAll,
// which takes it again: with a route to the same client waiting for the write lock in between,
// both wait for ever (a publisher paced 20 messages ahead of a Receive Maximum 10 subscriber hung
// the broker in 10 of 10 tries, TestPacedPublisherReceiveMaximum). mochi also re-sends every
// stored message at once when a client reconnects, whatever its Receive Maximum [MQTT-3.3.4-9].
//
// For an MQTT 5 client that states a Receive Maximum, the broker therefore sends every QoS 1 and
// 2 PUBLISH itself, from a queue of its own:
//   - once the session is established, mochi's send quota is reset to zero with a zero maximum:
//     mochi then never marks a message, never calls NextImmediate, and writes each routed
//     message at once — a write OnPacketEncode refuses (gateWrite) unless the broker's sender
//     asked for it;
//   - each message routed to the client (OnQosPublish) joins the session's queue, and the sender
//     (pump) writes queued messages in order while fewer than Receive Maximum PUBLISH and PUBREL
//     packets await acknowledgement; each acknowledgement (OnQosComplete) frees a place and
//     sends the next. Each step costs O(1): no table is copied or sorted per packet;
//   - at a takeover, the stored PUBLISH packets beyond the Receive Maximum (in the order they
//     were stored, PUBREL packets counting first) are taken out of the table mochi is about to
//     re-send and kept on the session's own list (s.held), which the sender writes first, each
//     put into mochi's table just before it is written; an offline session's backlog past
//     shelveAfter messages waits on that list too (shelve);
//   - a message larger than the client's Maximum Packet Size is discarded as if sent
//     [MQTT-3.1.2-25], so that the queue moves on.
//
// A message waiting in the queue stays in mochi's table, and one on the list stays with the
// session: if the client leaves again, the next reconnect re-sends it like any other stored
// message.

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

// shelveAfter is the number of messages in an offline session's table (mochi's) from which
// further messages routed to it are kept on the session's own list (s.held) instead: mochi
// copies and sorts a session's whole table for each sweep of expired messages, once a second,
// and gives each stored message a packet identifier (at most 65,535); a message on the list
// costs neither, and gets an identifier when it is sent.
var shelveAfter atomic.Int32 // 256; tests set it low to make every offline queue use the list

func init() { shelveAfter.Store(256) }

// shelve moves pk, just stored by mochi for the offline client cl, from mochi's table to its
// session's list, once the table holds shelveAfter messages or the list is in use (so that the
// list always holds the newest messages). The session's bound (Options.MaxStoredMessages)
// counts both: past it the message is dropped, logged and counted (Dropped). It applies only
// to a client whose broker-side queue was in charge (a Receive Maximum): for the others mochi
// would put a message back into its table after the hook returns.
func (h *hook) shelve(cl *mqtt.Client, o *sendOrder, pk packets.Packet, seq uint64) bool {
	if !cl.Closed() || receiveMaximum(cl) <= 0 || h.session(cl) != nil {
		return false
	}
	s := h.sessionOrParked(cl)
	if s == nil {
		return false
	}
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if s.heldGone || (len(s.held) == 0 && cl.State.Inflight.Len() <= int(shelveAfter.Load())) {
		return false
	}
	if cur, ok := cl.State.Inflight.Get(pk.PacketID); !ok || !sameMessage(cur, pk) || !cl.State.Inflight.Delete(pk.PacketID) {
		return false
	}
	o.mu.Lock()
	if o.seq[pk.PacketID] == seq {
		delete(o.seq, pk.PacketID) // the identifier is free again; seq stays with the message
	}
	o.mu.Unlock()
	if len(s.held)+cl.State.Inflight.Len() >= h.b.opts.MaxStoredMessages {
		h.dropStored(cl, pk, "the session holds MaxStoredMessages")
		return true
	}
	shelvedTotal.Add(1)
	s.held = append(s.held, heldMsg{pk: pk, seq: seq, fresh: true})
	return true
}

// takeShelf takes the messages on the list of cl's session (connected or offline) for a new
// connection taking the session over; nothing is shelved for cl after it.
func (h *hook) takeShelf(cl *mqtt.Client) []heldMsg {
	s := h.sessionOrParked(cl)
	if s == nil {
		return nil
	}
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	held := s.held
	s.held, s.heldGone = nil, true
	return held
}

// dropShelf forgets the list of a session that ends (expired, discarded).
func (h *hook) dropShelf(s *session) {
	s.heldMu.Lock()
	n := len(s.held)
	s.held, s.heldGone = nil, true
	s.heldMu.Unlock()
	h.forgetStored(n)
}

// forgetStored takes n messages that end with their session off mochi's count of stored ones.
func (h *hook) forgetStored(n int) { atomic.AddInt64(&h.b.srv.Info.Inflight, -int64(n)) }

// dropStored drops one stored message for cl at a bound: counted per client (Dropped) and
// logged.
func (h *hook) dropStored(cl *mqtt.Client, pk packets.Packet, why string) {
	h.forgetStored(1)
	h.b.countDrop(cl.ID)
	h.b.log.Warn("stored message dropped: "+why, "client", cl.ID, "topic", pk.TopicName, "max_stored", h.b.opts.MaxStoredMessages)
}

// shelvedTotal counts the messages shelve moved to a session's list, for the tests that check
// the list is in use.
var shelvedTotal atomic.Int64

// heldMsg is a stored message held back from mochi's re-send, with its place in the order
// (recorded apart: a message routed to the new connection meanwhile may get its identifier).
type heldMsg struct {
	pk    packets.Packet
	seq   uint64
	fresh bool // never sent: put back under a new identifier (see prepareResend)
}

// putBack stores held messages in cl's table.
func (h *hook) putBack(cl *mqtt.Client, held []heldMsg) {
	if len(held) == 0 {
		return
	}
	o := h.orderOf(cl.ID, true)
	for _, m := range held {
		h.storeHeld(cl, o, m)
	}
}

// storeHeld stores one held message in cl's table and returns it as stored. A packet identifier
// taken meanwhile (a message routed to the new connection before its re-send ended) is replaced
// by a free one; so is the identifier of a message the client was never sent. ok is false when
// no identifier is free: the message is dropped, and logged.
func (h *hook) storeHeld(cl *mqtt.Client, o *sendOrder, m heldMsg) (pk packets.Packet, ok bool) {
	pk = m.pk
	reassign := m.fresh
	if !reassign {
		cur, taken := cl.State.Inflight.Get(pk.PacketID)
		reassign = taken && !sameMessage(cur, pk)
	}
	if reassign {
		// mochi's allocator hands out identifiers in turn under the client's lock, so a
		// message routed at the same moment gets another one
		id, err := cl.NextPacketID()
		if err != nil {
			h.dropStored(cl, pk, "no free packet identifier")
			return pk, false
		}
		if m.fresh {
			o.mu.Lock()
			if m.seq != 0 && o.seq[pk.PacketID] == m.seq {
				delete(o.seq, pk.PacketID) // the old identifier's place in the order
			}
			o.mu.Unlock()
		}
		pk.PacketID = uint16(id)
	}
	o.mu.Lock()
	if m.seq != 0 {
		o.seq[pk.PacketID] = m.seq
	}
	o.mu.Unlock()
	cl.State.Inflight.Set(pk)
	return pk, true
}

// flowEntry is a message waiting in a session's queue: its packet identifier, and the second it
// was stored in, which tells it from a later message that reuses the identifier.
type flowEntry struct {
	id      uint16
	created int64
}

// flow is the broker's delivery state of one connection whose client states a Receive Maximum.
type flow struct {
	on    bool        // the session is established: the queue is in charge
	q     []flowEntry // waiting, in order; q[head:] is live
	head  int
	sent  map[uint16]bool // PUBLISH (and then PUBREL) written, not yet acknowledged
	allow map[uint16]int  // writes of a PUBLISH that gateWrite lets through
}

// startFlow runs once the session is established: the held messages (s.held) go first, then
// what was routed meanwhile; what mochi re-sent counts as sent. mochi's send quota goes to zero
// for good.
func (h *hook) startFlow(cl *mqtt.Client, s *session) {
	max := receiveMaximum(cl)
	if max <= 0 {
		return
	}
	cl.State.Inflight.ResetSendQuota(0)
	s.mu.Lock()
	f := &s.flow
	f.q = f.q[f.head:]
	f.head = 0
	waiting := make(map[uint16]bool, len(f.q))
	for _, e := range f.q {
		waiting[e.id] = true
	}
	f.sent = map[uint16]bool{}
	if f.allow == nil {
		f.allow = map[uint16]int{}
	}
	for _, pk := range cl.State.Inflight.GetAll(false) {
		if (pk.FixedHeader.Type == packets.Publish || pk.FixedHeader.Type == packets.Pubrel) && !waiting[pk.PacketID] {
			f.sent[pk.PacketID] = true
		}
	}
	f.on = true
	s.mu.Unlock()
	h.pump(cl)
}

// enqueueFlow puts a message routed to cl in its session's queue (OnQosPublish).
func (h *hook) enqueueFlow(cl *mqtt.Client, pk packets.Packet) {
	if receiveMaximum(cl) <= 0 || cl.IsTakenOver() {
		return
	}
	s := h.session(cl)
	if s == nil {
		return
	}
	s.mu.Lock()
	s.flow.q = append(s.flow.q, flowEntry{pk.PacketID, pk.Created})
	on := s.flow.on
	s.mu.Unlock()
	if on {
		h.pump(cl)
	}
}

// flowDone frees the place of an acknowledged or dropped message (OnQosComplete, OnQosDropped).
func (h *hook) flowDone(cl *mqtt.Client, id uint16) {
	if receiveMaximum(cl) <= 0 {
		return
	}
	s := h.session(cl)
	if s == nil {
		return
	}
	s.mu.Lock()
	freed := s.flow.sent[id]
	delete(s.flow.sent, id)
	delete(s.flow.allow, id)
	s.mu.Unlock()
	if freed {
		h.pump(cl)
	}
}

// pump writes queued messages, in order, while cl's Receive Maximum allows: first the stored
// messages held back from mochi's re-send (s.held, out of mochi's table until they are sent,
// so that mochi's per-second sweep and its copies of the table stay small during a drain), then
// the queue.
func (h *hook) pump(cl *mqtt.Client) {
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
	now := time.Now().Unix()
	for {
		s.mu.Lock()
		f := &s.flow
		if !f.on || len(f.sent) >= max {
			if f.head > 1024 && f.head*2 > len(f.q) {
				n := copy(f.q, f.q[f.head:])
				f.q, f.head = f.q[:n], 0
			}
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		pk, ok, more := h.nextHeld(cl, s)
		if !more {
			s.mu.Lock()
			if f.head == len(f.q) {
				f.q, f.head = f.q[:0], 0
				s.mu.Unlock()
				return
			}
			e := f.q[f.head]
			f.head++
			s.mu.Unlock()
			pk, ok = cl.State.Inflight.Get(e.id)
			// else acknowledged or dropped meanwhile, or its identifier reused
			ok = ok && pk.FixedHeader.Type == packets.Publish && pk.Created == e.created
		}
		if !ok {
			continue
		}
		was := pk
		if pk.Expiry < 0 {
			pk.Expiry = h.expiry(pk)
		}
		if pk.Expiry > 0 && pk.Expiry < now && pk.Properties.MessageExpiryInterval > 0 {
			if cl.State.Inflight.Delete(pk.PacketID) { // expired while waiting [MQTT-3.3.2-5]
				atomic.AddInt64(&h.b.srv.Info.Inflight, -1)
				h.forget(cl.ID, pk.PacketID)
			}
			continue
		}
		s.mu.Lock()
		f.sent[pk.PacketID] = true
		f.allow[pk.PacketID]++
		s.mu.Unlock()
		if beforeFlowWrite != nil {
			beforeFlowWrite(cl, pk)
		}
		// A refusal by gateWrite means mochi's own copy of the message, queued when it was
		// routed, took the one write allowed and went out in the meantime: sent.
		if err := cl.WritePacket(pk); err != nil && !errors.Is(err, packets.ErrNoValidPacketAvailable) {
			// Larger than the client's Maximum Packet Size: discarded as if sent and
			// acknowledged [MQTT-3.1.2-25]; kept first in the queue, it would be tried again
			// after every packet and nothing after it would ever go out. Any other failure:
			// still stored, sent at the next connection like any stored message.
			tooLarge := errors.Is(err, packets.ErrPacketTooLarge)
			s.mu.Lock()
			delete(f.sent, pk.PacketID)
			delete(f.allow, pk.PacketID)
			if !tooLarge && !more {
				f.head-- // still first in the queue
			}
			s.mu.Unlock()
			if !tooLarge {
				return
			}
			h.discardTooLarge(cl, pk, maxPacketSize(cl))
			continue
		}
		if was.Expiry < 0 {
			replace(cl, was, pk) // unmarked, awaiting its acknowledgement
		}
	}
}

// beforeFlowWrite, when set (by tests only), runs in pump between the write being allowed and
// the write: where mochi's write loop may write its own copy of the message.
var beforeFlowWrite func(cl *mqtt.Client, pk packets.Packet)

// nextHeld takes the first held message of s and stores it in cl's table to be sent; more is
// false when none is held. ok is false when it could not be stored (no free identifier).
func (h *hook) nextHeld(cl *mqtt.Client, s *session) (pk packets.Packet, ok, more bool) {
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if len(s.held) == 0 {
		s.held = nil
		return pk, false, false
	}
	m := s.held[0]
	s.held[0] = heldMsg{} // a packets.Packet holds the payload: let it go once sent
	s.held = s.held[1:]
	pk, ok = h.storeHeld(cl, h.orderOf(cl.ID, true), m)
	return pk, ok, true
}

// OnPacketProcessed runs after each packet the client sent, before mochi's own check for marked
// messages; with the quota at zero that check never passes (see the top of this file).
func (h *hook) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, err error) {
	h.pump(cl)
}

// gateWrite is called for each packet mochi writes to cl (OnPacketEncode). For a client whose
// messages the broker's queue sends, a new QoS 1 or 2 PUBLISH is written only when the sender
// asked for it (once per request: of two writes of one message, by the sender and by mochi at
// the same moment, one goes out); mochi's own immediate write of a routed message is refused: the
// packet returned cannot be encoded, so mochi's write loop drops it (logged at debug level), and
// the message waits in the queue. Re-sends (DUP) and PUBREL pass.
func (h *hook) gateWrite(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos == 0 || pk.FixedHeader.Dup {
		return pk
	}
	if receiveMaximum(cl) <= 0 {
		// mochi's own delivery: a message too large for the client is discarded here, as
		// its failed write would leave it stored for good (oversize.go). A re-send (DUP) was
		// checked before the re-send began (dropTooLarge).
		if limit := maxPacketSize(cl); tooLarge(pk, limit) {
			h.discardTooLarge(cl, pk, limit)
			pk.FixedHeader.Type = packets.Reserved
		}
		return pk
	}
	s := h.session(cl)
	if s == nil {
		return pk
	}
	s.mu.Lock()
	n := s.flow.allow[pk.PacketID]
	if n > 0 {
		if n == 1 {
			delete(s.flow.allow, pk.PacketID)
		} else {
			s.flow.allow[pk.PacketID] = n - 1
		}
	}
	s.mu.Unlock()
	if n > 0 {
		return pk
	}
	pk.FixedHeader.Type = packets.Reserved
	return pk
}
