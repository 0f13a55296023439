package broker

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Redelivery order.
//
// mochi (v2.7.9) re-sends a session's unacknowledged messages at reconnect — among them every
// QoS 1 and 2 message queued while the client was offline — sorted by the low 16 bits of the
// second in which each message was stored, and in Go map order within one second. A queue
// filled in one second therefore comes back shuffled, which breaks [MQTT-4.6.0-1] (re-sent
// PUBLISH packets in their original order) and [MQTT-4.6.0-6] (ordered topics). The same sort
// picks the messages held back by the client's Receive Maximum.
//
// sendOrder records the order in which mochi stores each outgoing message of a session, and
// before a session is taken over by a new connection, rewrites the stored seconds of its
// messages so that mochi's own sort yields that order: each message keeps its second unless
// an earlier message has the same or a later one; then it gets the second after that message's.
// The stored second matters for one other thing only, mochi's forced expiry of messages older
// than Capabilities.MaximumMessageExpiryInterval (24 h), which is postponed by as many seconds
// as a message was moved (one per message queued in the same second; for a queue spanning the
// moment the low 16 bits wrap, once every 18.2 hours, up to that much). MQTT 5 Message Expiry
// Intervals are kept apart from it and are not affected.
type sendOrder struct {
	mu  sync.Mutex
	seq map[uint16]uint64 // packet ID → position in the order mochi stored the messages
	// written holds the positions of messages written to some connection of the client: a
	// message stored for an offline session and sent at the reconnect is a first delivery, and
	// goes out with DUP 0 [MQTT-3.3.1-3], though mochi re-sends it marked DUP.
	written map[uint64]bool
}

var sendSeq atomic.Uint64

// orderOf returns the order record of a client ID, creating it when create is set.
func (h *hook) orderOf(clientID string, create bool) *sendOrder {
	if v, ok := h.order.Load(clientID); ok {
		return v.(*sendOrder)
	}
	if !create {
		return nil
	}
	v, _ := h.order.LoadOrStore(clientID, &sendOrder{seq: map[uint16]uint64{}, written: map[uint64]bool{}})
	return v.(*sendOrder)
}

// OnQosPublish is called when mochi stores an outgoing QoS 1 or 2 message in a session (and
// again for each re-send, with DUP set: mochi stores copies with DUP clear).
func (h *hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Dup || resends != 0 {
		return
	}
	if h.handOnStale(cl, pk) {
		return
	}
	o := h.orderOf(cl.ID, true)
	seq := sendSeq.Add(1)
	o.mu.Lock()
	o.seq[pk.PacketID] = seq
	o.mu.Unlock()
	if h.shelve(cl, o, pk, seq) {
		return
	}
	h.enqueueFlow(cl, pk)
}

// OnQosComplete and OnQosDropped free a packet ID's record. When a new connection takes the
// session over, mochi drops the old connection's copies of the messages it hands on: their
// records stay.
func (h *hook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	h.forget(cl.ID, pk.PacketID)
	h.exchangeDone(cl, pk)
	h.flowDone(cl, pk.PacketID)
}

func (h *hook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if h.rescueDropped(cl, pk) {
		return // the old client of a takeover
	}
	if !cl.IsTakenOver() {
		h.forget(cl.ID, pk.PacketID)
		h.exchangeDone(cl, pk)
		h.flowDone(cl, pk.PacketID)
	}
}

func (h *hook) forget(clientID string, id uint16) {
	if o := h.orderOf(clientID, false); o != nil {
		o.mu.Lock()
		delete(o.written, o.seq[id])
		delete(o.seq, id)
		o.mu.Unlock()
	}
}

// firstDelivery clears DUP on a QoS 1/2 PUBLISH written to cl that no connection of the client
// was sent before, and records the write (OnPacketEncode, for packets that go out).
func (h *hook) firstDelivery(cl *mqtt.Client, pk *packets.Packet) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos == 0 {
		return
	}
	o := h.orderOf(cl.ID, false)
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	seq, ok := o.seq[pk.PacketID]
	if !ok {
		return
	}
	if pk.FixedHeader.Dup && !o.written[seq] {
		pk.FixedHeader.Dup = false
	}
	o.written[seq] = true
}

// OnSessionEstablish runs before mochi hands an existing session to a new connection.
func (h *hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	h.lockID(cl)          // one takeover of this client ID at a time: see idlock.go
	h.openConnackGate(cl) // before mochi registers cl: see connackfirst.go
	old, ok := h.b.srv.Clients.Get(cl.ID)
	if !ok || old == cl {
		return
	}
	shelf := h.takeShelf(old)
	if pk.Connect.Clean || (old.Properties.Clean && old.Properties.ProtocolVersion < 5) {
		h.forgetStored(len(shelf))
		h.order.Delete(cl.ID) // the session is discarded [MQTT-3.1.2-4]
		h.ids.Delete(cl.ID)
		return
	}
	shelf = h.dropTooLarge(old, cl, shelf) // before mochi's re-send, which a failed write ends
	if s := h.session(cl); s != nil {
		chain := []*mqtt.Client{old}
		if os := h.sessionOrParked(old); os != nil {
			os.mu.Lock()
			chain = append(chain, os.inherited[:min(len(os.inherited), maxInherited-1)]...)
			os.mu.Unlock()
		}
		s.mu.Lock()
		s.replaced, s.inherited = old, chain
		s.mu.Unlock()
		h.takeovers.Store(old, takeover{cl: cl, s: s})
	}
	held := h.prepareResend(old, receiveMaximum(cl), shelf)
	if s := h.session(cl); s != nil {
		s.heldMu.Lock()
		s.held = held
		s.heldMu.Unlock()
	} else {
		h.putBack(old, held)
	}
}

// prepareResend readies cl's unacknowledged outgoing messages (PUBLISH, and PUBREL of QoS 2
// messages past PUBREC) for mochi's re-send to the new connection: it rewrites their stored
// seconds so that mochi sends them in the order it stored them, and clears mochi's "send when
// the Receive Maximum allows" mark. shelf holds the session's messages kept out of the table
// (s.held: see shelve), in their order; they are merged in by that order.
//
// mochi marks a message stored while the client's Receive Maximum is used up (for an offline
// client: every message after the first Receive Maximum ones) to be sent as soon as an
// acknowledgement frees a place, and then sends it and forgets it, without waiting for its
// acknowledgement. At reconnect it re-sends every stored message anyway, marked or not, so each
// marked message would reach the client a second time, with DUP 0 and an identifier that may
// already name another message. Cleared, the mark gives back the message's expiry time, which
// mochi had overwritten with it.
//
// With max above zero (the new connection's Receive Maximum, see flow.go), the PUBLISH packets
// beyond it are out of cl's table once it returns (taken out, or left on the shelf), and
// returned in their order for the broker to send as acknowledgements free places; shelved
// messages within it are stored in the table for mochi's re-send. With max zero every message
// is stored in the table (each needs a packet identifier: past 65,535 the rest are dropped,
// counted).
func (h *hook) prepareResend(cl *mqtt.Client, max int, shelf []heldMsg) []heldMsg {
	o := h.orderOf(cl.ID, true)
	es, seqs, order := h.storedInOrder(cl, o)
	// The merged order: table entries are 0..len(es)-1, shelved ones len(es)+k.
	order = mergeShelf(order, seqs, shelf)
	if len(order) == 0 {
		return nil
	}
	pkAt := func(k int32) *packets.Packet {
		if int(k) < len(es) {
			return &es[k]
		}
		return &shelf[int(k)-len(es)].pk
	}
	created := orderedSeconds(pkAt(order[0]).Created, len(order), func(i int) int64 { return pkAt(order[i]).Created })
	types := make([]byte, len(order))
	for i, k := range order {
		types[i] = pkAt(k).FixedHeader.Type
	}
	beyond := holdBeyond(types, max)
	// The PUBLISH packets beyond the old connection's own Receive Maximum were never written to
	// it (the broker sends in order, at most that many unacknowledged): their identifiers mean
	// nothing to the client yet, and they get fresh ones when put back. Kept, an identifier is
	// free in the table while the message is held, and a message routed to the new connection
	// meanwhile may take it: putting the held one back would then overwrite the routed one
	// (TestOfflineQueueFennecReceiveMaximum lost the first live message so, under load).
	neverSent := map[int]bool{}
	if old := receiveMaximum(cl); old > 0 {
		for _, i := range holdBeyond(types, old) {
			neverSent[i] = true
		}
	}
	isHeld := make(map[int]bool, len(beyond))
	for _, i := range beyond {
		isHeld[i] = true
	}
	held := make([]heldMsg, 0, len(beyond))
	for i, k := range order {
		if int(k) >= len(es) { // shelved
			m := shelf[int(k)-len(es)]
			m.pk.Created = created[i]
			if isHeld[i] {
				held = append(held, m)
			} else {
				// in the table for mochi's re-send, DUP set as mochi sets it; firstDelivery
				// clears it for a message no connection got
				h.storeHeld(cl, o, m)
			}
			continue
		}
		pk := es[k]
		if isHeld[i] {
			// taken out of the table; its stored second is rewritten too, for the order
			// should it be stored again
			if cur, ok := cl.State.Inflight.Get(pk.PacketID); ok && sameMessage(cur, pk) && cl.State.Inflight.Delete(pk.PacketID) {
				fresh := neverSent[i]
				pk.Created = created[i]
				pk.FixedHeader.Dup = !fresh // a stored message, re-sent [MQTT-3.3.1-1]
				held = append(held, heldMsg{pk: pk, seq: seqs[k], fresh: fresh})
			}
			continue
		}
		if pk.Created != created[i] {
			was := pk
			pk.Created = created[i]
			replace(cl, was, pk)
		}
	}
	return held
}

// storedInOrder returns cl's stored PUBLISH and PUBREL packets (mochi's "send when the Receive
// Maximum allows" mark cleared), their positions in the order they were stored, and the indexes
// of es in that order.
func (h *hook) storedInOrder(cl *mqtt.Client, o *sendOrder) (es []packets.Packet, seqs []uint64, order []int32) {
	all := storedPackets(cl)
	es = all[:0] // the PUBLISH and PUBREL packets, in place
	o.mu.Lock()
	for _, pk := range all {
		if pk.FixedHeader.Type != packets.Publish && pk.FixedHeader.Type != packets.Pubrel {
			continue // acknowledgements of the client's own QoS 2 messages
		}
		if pk.Expiry < 0 {
			was := pk
			pk.Expiry = h.expiry(pk)
			replace(cl, was, pk)
		}
		es = append(es, pk)
		seqs = append(seqs, o.seq[pk.PacketID])
	}
	o.mu.Unlock()
	order = make([]int32, len(es))
	for i := range order {
		order[i] = int32(i)
	}
	// Sorted through an index: a packets.Packet is 800 bytes, and a backlog may be large. A
	// PUBLISH with no recorded place is one mochi has just stored and not yet reported
	// (OnQosPublish runs after the store): the newest of the session, so it goes last.
	sort.Slice(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if sa, sb := placeOf(seqs[a]), placeOf(seqs[b]); sa != sb {
			return sa < sb
		}
		return es[a].Created < es[b].Created
	})
	return es, seqs, order
}

// placeOf is the sort key of a recorded position: 0 (not recorded yet) sorts after every
// recorded one.
func placeOf(seq uint64) uint64 {
	if seq == 0 {
		return math.MaxUint64
	}
	return seq
}

// mergeShelf merges the shelved messages (in their order already; index len(seqs)+k) into the
// sorted table order by their recorded positions.
func mergeShelf(order []int32, seqs []uint64, shelf []heldMsg) []int32 {
	if len(shelf) == 0 {
		return order
	}
	n := int32(len(seqs))
	out := make([]int32, 0, len(order)+len(shelf))
	i := 0
	for k, m := range shelf {
		for i < len(order) && placeOf(seqs[order[i]]) <= placeOf(m.seq) {
			out = append(out, order[i])
			i++
		}
		out = append(out, n+int32(k))
	}
	return append(out, order[i:]...)
}

// storedPackets returns the packets in cl's table, in no particular order. mochi's GetAll
// appends them one by one to a slice it then sorts, which for a large table (a packets.Packet
// is 800 bytes) costs far more than reading each packet identifier in turn.
func storedPackets(cl *mqtt.Client) []packets.Packet {
	n := cl.State.Inflight.Len()
	if n < 4096 {
		return cl.State.Inflight.GetAll(false)
	}
	out := make([]packets.Packet, 0, n+n/8)
	for id := 1; id <= 65535; id++ {
		if pk, ok := cl.State.Inflight.Get(uint16(id)); ok {
			out = append(out, pk)
		}
	}
	return out
}

// replace stores pk in cl's table in place of was, unless the entry changed meanwhile: a client
// still connected while a new connection takes its session over may finish an exchange at the
// same moment, and its entry must not come back.
func replace(cl *mqtt.Client, was, pk packets.Packet) {
	cur, ok := cl.State.Inflight.Get(was.PacketID)
	if ok && sameMessage(cur, was) && cur.Expiry == was.Expiry {
		cl.State.Inflight.Set(pk)
	}
}

// expiry is the absolute expiry time mochi gives a message when it is published: the smaller
// of its Message Expiry Interval and the server's maximum, counted from its arrival; 0: none.
func (h *hook) expiry(pk packets.Packet) int64 {
	d := h.b.srv.Options.Capabilities.MaximumMessageExpiryInterval
	if m := int64(pk.Properties.MessageExpiryInterval); m > 0 && (d == 0 || m < d) {
		d = m
	}
	if d <= 0 {
		return 0
	}
	return pk.Created + d
}

// orderedSeconds returns n strictly increasing seconds, each at least orig(i), whose low 16 bits
// (mochi's sort key) increase too: if they would wrap, every second is moved to the block of
// 65 536 seconds in which the last one falls.
func orderedSeconds(first int64, n int, orig func(int) int64) []int64 {
	out := make([]int64, n)
	assign := func(start int64) {
		prev := start - 1
		for i := range out {
			prev = max(orig(i), prev+1)
			out[i] = prev
		}
	}
	assign(first)
	const block = 1 << 16
	if out[0]/block != out[n-1]/block {
		assign(max(first, out[n-1]/block*block))
	}
	return out
}
