package broker

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// CONNACK first.
//
// mochi (v2.7.9) registers a connecting client as the one messages for its client ID are routed
// to before it writes the CONNACK (attachClient: Clients.Add, then SendConnack). A message
// published in between, for a session that is taken over or for a subscription the client
// inherits, can be written to the new connection ahead of its CONNACK, which breaks
// [MQTT-3.2.0-1] (the first packet from the server is CONNACK); a strict client closes the
// connection with a protocol error. The Fennec client saw it about once in 40 runs of the
// reconnect stress test.
//
// The broker opens a gate per connection in OnSessionEstablish (before mochi registers the
// client) and closes it when the CONNACK has been written (OnPacketSent). Any other packet that
// mochi encodes for that connection meanwhile waits at the gate (OnPacketEncode runs before
// mochi takes the client's write lock, so the CONNACK is never held up by it).

// connackWait bounds the wait at the gate: a connection whose CONNACK is never written (it
// failed) is closed by then anyway.
const connackWait = 5 * time.Second

func (h *hook) openConnackGate(cl *mqtt.Client) {
	h.connackGates.Store(cl, make(chan struct{}))
}

// closeConnackGate lets the packets waiting for cl's CONNACK go.
func (h *hook) closeConnackGate(cl *mqtt.Client) {
	if v, ok := h.connackGates.LoadAndDelete(cl); ok {
		close(v.(chan struct{}))
	}
	h.unlockID(cl)
}

// waitConnack holds a packet for cl until cl's CONNACK has been written.
func (h *hook) waitConnack(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Type == packets.Connack || pk.FixedHeader.Type == packets.Auth {
		return
	}
	v, ok := h.connackGates.Load(cl)
	if !ok {
		return
	}
	t := time.NewTimer(connackWait)
	defer t.Stop()
	select {
	case <-v.(chan struct{}):
	case <-t.C:
		h.b.log.Warn("CONNACK not written in time; sending queued packet anyway", "client", cl.ID)
	}
}

func (h *hook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, b []byte) {
	if pk.FixedHeader.Type == packets.Connack {
		h.closeConnackGate(cl)
	}
}
