package broker

import (
	"bytes"
	"errors"
	"slices"
	"sort"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Messages routed during a takeover.
//
// When a connection takes over a session, mochi (v2.7.9) copies the old client's stored
// messages to the new client, then clears the old client's table, and only then makes the new
// client the one that messages are routed to. A message routed to the session in between is
// stored in the old client's table: after the copy, so it is cleared (mochi reports it to
// OnQosDropped), or after the clearing, so it stays in a client nothing uses any more. Its
// publisher already has its PUBACK. The broker collects both kinds and stores them in the new
// client's session when the new connection is established, with packet identifiers of the new
// client, and sends them.

// takeover is registered in OnSessionEstablish for an old client whose session a new
// connection inherits.
type takeover struct {
	cl *mqtt.Client // the new client
	s  *session     // its session
}

// rescueDropped keeps a message mochi drops from the old client of a takeover when the new
// client did not get a copy of it.
func (h *hook) rescueDropped(old *mqtt.Client, pk packets.Packet) bool {
	v, ok := h.takeovers.Load(old)
	if !ok {
		return false
	}
	if pk.FixedHeader.Type != packets.Publish {
		return true
	}
	t := v.(takeover)
	if cp, ok := t.cl.State.Inflight.Get(pk.PacketID); ok && sameMessage(cp, pk) {
		return true // handed on
	}
	t.s.mu.Lock()
	t.s.late = append(t.s.late, pk)
	t.s.mu.Unlock()
	return true
}

func sameMessage(a, b packets.Packet) bool {
	return a.FixedHeader.Type == b.FixedHeader.Type && a.Created == b.Created && a.TopicName == b.TopicName &&
		a.FixedHeader.Qos == b.FixedHeader.Qos && bytes.Equal(a.Payload, b.Payload)
}

// deliverLate stores and sends the messages routed to the old client during the takeover of
// cl's session; cl is now the client messages are routed to.
func (h *hook) deliverLate(cl *mqtt.Client, s *session) {
	s.mu.Lock()
	old, late := s.replaced, s.late
	s.replaced, s.late = nil, nil
	s.mu.Unlock()
	if old == nil {
		return
	}
	h.takeovers.Delete(old)
	for _, pk := range old.State.Inflight.GetAll(false) { // routed after the clearing
		if pk.FixedHeader.Type == packets.Publish && old.State.Inflight.Delete(pk.PacketID) {
			atomic.AddInt64(&h.b.srv.Info.Inflight, -1)
			late = append(late, pk)
		}
	}
	if len(late) == 0 {
		return
	}
	o := h.orderOf(cl.ID, true)
	o.mu.Lock()
	sort.SliceStable(late, func(i, j int) bool {
		si, sj := placeOf(o.seq[late[i].PacketID]), placeOf(o.seq[late[j].PacketID])
		if late[i].Created != late[j].Created {
			return late[i].Created < late[j].Created
		}
		return si < sj
	})
	o.mu.Unlock()
	h.handOn(cl, late)
}

// handOn stores messages meant for an earlier connection of cl's session in cl's session, with
// packet identifiers of cl, and sends them (or leaves them to the delivery queue).
func (h *hook) handOn(cl *mqtt.Client, late []packets.Packet) {
	writeFailed := false
	for _, pk := range late {
		id, err := cl.NextPacketID()
		if err != nil {
			h.b.log.Warn("message routed during a session takeover dropped: no free packet identifier", "client", cl.ID)
			continue
		}
		pk.PacketID = uint16(id)
		pk.FixedHeader.Dup = false
		if pk.Expiry < 0 {
			pk.Expiry = h.expiry(pk)
		}
		limited := receiveMaximum(cl) > 0
		if cl.State.Inflight.Set(pk) {
			atomic.AddInt64(&h.b.srv.Info.Inflight, 1)
			h.OnQosPublish(cl, pk, pk.Created, 0) // limited: queued and sent by the broker's queue (flow.go)
			if !limited {
				cl.State.Inflight.DecreaseSendQuota()
			}
		}
		h.b.log.Debug("message routed during a session takeover handed on", "client", cl.ID, "topic", pk.TopicName)
		if limited || writeFailed {
			continue
		}
		// A refusal by gateWrite: it discarded the message as too large for the client
		// [MQTT-3.1.2-25], and the rest still go.
		if err := cl.WritePacket(pk); err != nil && !errors.Is(err, packets.ErrNoValidPacketAvailable) {
			writeFailed = true // this one and the rest stay stored: sent at the next connection
		}
	}
}

// Routings that outlive a takeover.
//
// mochi routes a message by looking up the client of each subscribed client ID, then storing
// the message in that client's table (publishToClient). A routing that looked up the old client
// before the switch can store the message there after the takeover has ended and the late
// messages were handed on: nothing would ever send it. The new client's session remembers the
// old client it inherited; a message stored in that old client after the takeover is moved to
// the client that now holds the session. A routing can outlive several takeovers when a client
// reconnects at once, again and again (seen under the race detector): the session remembers the
// last maxInherited clients, so a routing that stalls across more reconnects than that is not
// caught. The cost is that many closed mochi clients (their tables empty) kept per session.
const maxInherited = 8

// successor returns the client that now holds the session of cl, and its session, when cl is
// the old client of a finished takeover.
func (h *hook) successor(cl *mqtt.Client) (*mqtt.Client, *session) {
	if _, inTakeover := h.takeovers.Load(cl); inTakeover {
		return nil, nil // its messages are collected by the takeover itself
	}
	cur, ok := h.b.srv.Clients.Get(cl.ID)
	if !ok || cur == cl {
		return nil, nil
	}
	s := h.sessionOrParked(cur)
	if s == nil {
		return nil, nil
	}
	s.mu.Lock()
	inherited := slices.Contains(s.inherited, cl)
	s.mu.Unlock()
	if !inherited {
		return nil, nil
	}
	return cur, s
}

// handOnStale moves a message mochi just stored in the old client of a finished takeover to
// the client that holds the session now. It reports whether pk was such a message.
func (h *hook) handOnStale(old *mqtt.Client, pk packets.Packet) bool {
	cur, _ := h.successor(old)
	if cur == nil {
		return false
	}
	// The takeover's own collection (deliverLate) may have found the message first: whichever
	// removes it from the old table hands it on.
	if !old.State.Inflight.Delete(pk.PacketID) {
		return true
	}
	atomic.AddInt64(&h.b.srv.Info.Inflight, -1)
	h.b.log.Debug("message routed to a replaced connection handed on", "client", cur.ID, "topic", pk.TopicName)
	h.handOn(cur, []packets.Packet{pk})
	return true
}
