package broker

import (
	"bytes"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Messages larger than a client's Maximum Packet Size.
//
// An MQTT 5 client states the largest packet it accepts; a message that does not fit is
// discarded for that client as if it had been sent [MQTT-3.1.2-25]. mochi (v2.7.9) only finds
// out when the write fails, and then: a routed message stays stored (its write is retried at
// each reconnect); a failed re-send at reconnect ends the connection ("resend inflight"), so a
// session holding such a message could never be resumed. The broker discards such a message
// where its delivery queue writes it (flow.go), refuses mochi's own write of one (gateWrite,
// which also covers hand-ons, takeover.go) and, before mochi re-sends a session's stored
// messages to a new connection, takes those that would not fit it out of the session
// (dropTooLarge).

// maxPacketSize is the Maximum Packet Size cl stated, 0 for none (or MQTT 3.1.1).
func maxPacketSize(cl *mqtt.Client) uint32 {
	if cl.Properties.ProtocolVersion < 5 {
		return 0
	}
	return cl.Properties.Props.MaximumPacketSize
}

// tooLarge reports whether pk, written to an MQTT 5 client as mochi writes it (re-sent: DUP;
// a Message Expiry Interval when it expires), is larger than limit bytes. Bounds of the size
// settle almost every message without encoding it.
func tooLarge(pk packets.Packet, limit uint32) bool {
	if limit == 0 || pk.FixedHeader.Type != packets.Publish {
		return false
	}
	body := len(pk.TopicName) + 2 + len(pk.Payload)
	if pk.FixedHeader.Qos > 0 {
		body += 2
	}
	if uint64(body)+2 > uint64(limit) { // at least a 2-byte fixed header and no properties
		return true
	}
	props := len(pk.Properties.ContentType) + len(pk.Properties.ResponseTopic) + len(pk.Properties.CorrelationData) +
		5*len(pk.Properties.SubscriptionIdentifier) + 64 // the fixed-size properties, with room
	for _, u := range pk.Properties.User {
		props += 5 + len(u.Key) + len(u.Val)
	}
	if uint64(body)+uint64(props)+5+4 <= uint64(limit) { // 5: fixed header; 4: property length
		return false
	}
	pk.ProtocolVersion = 5
	pk.FixedHeader.Dup = true
	if pk.Expiry > 0 {
		pk.Properties.MessageExpiryInterval = 1 << 31 // four bytes whatever it will be
	}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		return false // mochi's write reports it
	}
	return uint64(buf.Len()) > uint64(limit)
}

// dropTooLarge discards the messages of old's session (its table and its list, shelf) that
// are too large for the Maximum Packet Size of cl, the connection taking the session over, and
// returns the list without them.
func (h *hook) dropTooLarge(old, cl *mqtt.Client, shelf []heldMsg) []heldMsg {
	limit := maxPacketSize(cl)
	if limit == 0 {
		return shelf
	}
	for _, pk := range storedPackets(old) {
		if tooLarge(pk, limit) {
			h.discardTooLarge(old, pk, limit)
		}
	}
	kept := shelf[:0]
	for _, m := range shelf {
		if tooLarge(m.pk, limit) {
			h.forgetStored(1)
			h.logTooLarge(cl, m.pk, limit)
			continue
		}
		kept = append(kept, m)
	}
	clear(shelf[len(kept):])
	return kept
}

// discardTooLarge removes pk, which cannot be sent within a Maximum Packet Size of limit, from
// cl's table, and logs it.
func (h *hook) discardTooLarge(cl *mqtt.Client, pk packets.Packet, limit uint32) {
	if cur, ok := cl.State.Inflight.Get(pk.PacketID); ok && sameMessage(cur, pk) && cl.State.Inflight.Delete(pk.PacketID) {
		atomic.AddInt64(&h.b.srv.Info.Inflight, -1)
	}
	h.forget(cl.ID, pk.PacketID)
	h.logTooLarge(cl, pk, limit)
}

func (h *hook) logTooLarge(cl *mqtt.Client, pk packets.Packet, limit uint32) {
	h.b.log.Warn("message discarded: larger than the client's Maximum Packet Size [MQTT-3.1.2-25]",
		"client", cl.ID, "topic", pk.TopicName, "payload_bytes", len(pk.Payload), "max_packet_size", limit)
}
