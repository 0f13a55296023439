package broker

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Packet identifiers.
//
// MQTT gives each direction its own packet identifiers: the client numbers its PUBLISH,
// SUBSCRIBE and UNSUBSCRIBE packets, the server its PUBLISH packets, independently of each other
// (MQTT 3.1.1 §2.3.1, MQTT 5 §2.2.1). mochi (v2.7.9) keeps both in one table of the session. A
// client that reconnects to a session with stored messages and subscribes again with packet
// identifier 1 (as mosquitto_sub does) while the server's message 1 awaits its PUBACK would get
// SUBACK 0x91 (3.1.1: 0x80) for every filter; a QoS 1 or 2 PUBLISH numbered like an
// unacknowledged delivery would make mochi forget that delivery.
//
// The broker renumbers such a packet as it is read, to an identifier free in that table, and
// gives the packets mochi writes back for it (SUBACK, UNSUBACK, PUBACK; PUBREC and PUBCOMP of a
// QoS 2 exchange) the client's identifier again. The renumbering of a QoS 2 exchange lasts until
// its PUBCOMP, across reconnects; it belongs to the session.
type idMap struct {
	mu       sync.Mutex
	client   map[uint16]uint16 // client's identifier → the table's, for QoS 2 exchanges in progress
	internal map[uint16]idSwap // the table's identifier → the client's
}

type idSwap struct {
	client uint16
	last   byte // the packet type that ends the exchange
}

func (h *hook) idsOf(clientID string, create bool) *idMap {
	if v, ok := h.ids.Load(clientID); ok {
		return v.(*idMap)
	}
	if !create {
		return nil
	}
	v, _ := h.ids.LoadOrStore(clientID, &idMap{client: map[uint16]uint16{}, internal: map[uint16]idSwap{}})
	return v.(*idMap)
}

// renumber gives a packet the client sent an identifier free in cl's session table when its
// own names one of the server's deliveries there.
func (h *hook) renumber(cl *mqtt.Client, pk *packets.Packet) {
	var last byte
	switch {
	case pk.FixedHeader.Type == packets.Subscribe:
		last = packets.Suback
	case pk.FixedHeader.Type == packets.Unsubscribe:
		last = packets.Unsuback
	case pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos == 1:
		last = packets.Puback
	case pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos == 2,
		pk.FixedHeader.Type == packets.Pubrel:
		// A QoS 2 exchange renumbered before: its PUBLISH again (DUP) or its PUBREL.
		if m := h.idsOf(cl.ID, false); m != nil {
			m.mu.Lock()
			id, ok := m.client[pk.PacketID]
			m.mu.Unlock()
			if ok {
				pk.PacketID = id
				return
			}
		}
		if pk.FixedHeader.Type == packets.Pubrel {
			return
		}
		last = packets.Pubcomp
	default:
		return
	}
	if pk.PacketID == 0 {
		return
	}
	used, ok := cl.State.Inflight.Get(pk.PacketID)
	if !ok || (used.FixedHeader.Type != packets.Publish && used.FixedHeader.Type != packets.Pubrel) {
		return // free, or one of the client's own exchanges: mochi's rules apply
	}
	m := h.idsOf(cl.ID, true)
	m.mu.Lock()
	defer m.mu.Unlock()
	// mochi numbers its deliveries upwards from 1; a free identifier is looked for downwards.
	for id := uint16(0xFFFF); id > 0; id-- {
		if _, taken := m.internal[id]; taken {
			continue
		}
		if _, taken := cl.State.Inflight.Get(id); taken {
			continue
		}
		m.internal[id] = idSwap{client: pk.PacketID, last: last}
		if last == packets.Pubcomp {
			m.client[pk.PacketID] = id
		}
		pk.PacketID = id
		return
	}
}

// restoreID gives a packet the broker writes for a renumbered one the client's identifier.
func (h *hook) restoreID(cl *mqtt.Client, pk *packets.Packet) {
	switch pk.FixedHeader.Type {
	case packets.Suback, packets.Unsuback, packets.Puback, packets.Pubrec, packets.Pubcomp:
	default:
		return
	}
	m := h.idsOf(cl.ID, false)
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.internal[pk.PacketID]
	if !ok {
		return
	}
	switch {
	case pk.FixedHeader.Type == w.last && w.last != packets.Pubcomp:
		delete(m.internal, pk.PacketID) // one packet each way: done
	case pk.FixedHeader.Type == w.last, w.last == packets.Pubcomp && pk.FixedHeader.Type == packets.Pubrec:
		// QoS 2: the table's entry ends at exchangeDone, after the PUBCOMP is written.
	default:
		return
	}
	pk.PacketID = w.client
}

// exchangeDone ends the renumbering of a QoS 2 exchange when mochi removes it from the table.
func (h *hook) exchangeDone(cl *mqtt.Client, pk packets.Packet) {
	switch pk.FixedHeader.Type {
	case packets.Pubrel, packets.Pubcomp, packets.Pubrec:
	default:
		return
	}
	m := h.idsOf(cl.ID, false)
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if w, ok := m.internal[pk.PacketID]; ok && w.last == packets.Pubcomp {
		delete(m.internal, pk.PacketID)
		delete(m.client, w.client)
	}
}
