// Counters a user may need to see.

package fennec

// Stats are counters of what the client did that a user may need to see: figures that say a
// message was dropped or seen twice, and why. They only grow.
type Stats struct {
	// Connections counts the connections the broker accepted (CONNACK); Connections-1 is the
	// number of reconnects.
	Connections uint64
	// DroppedQoS0 counts received QoS 0 messages dropped because the handler queue was full
	// while a handler waited for the broker (see "Inbound messages and handlers" in the docs).
	DroppedQoS0 uint64
	// QoS2ResentAfterRelease counts QoS 2 messages the broker sent again, marked DUP and
	// identical, after their handshake had finished (PUBREL received, PUBCOMP sent). The
	// protocol makes such a PUBLISH a new message, so the application receives it twice: a
	// broker that lost its state does this (mosquitto restarted from a persistence snapshot
	// older than the handshake; see "Observed broker behaviour" in the docs).
	QoS2ResentAfterRelease uint64
	// DroppedOversize counts PUBLISH packets larger than Config.MaxPacketSize from an MQTT
	// 3.1.1 broker, which cannot be told the limit: skipped without being held, acknowledged,
	// and logged at the 1st, 2nd, 4th, 8th… drop. (An MQTT 5 broker is told the limit; one that
	// sends a larger packet ends the connection, DISCONNECT 0x95.)
	DroppedOversize uint64
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	s := Stats{Connections: c.connections, DroppedOversize: c.droppedOversize}
	s.QoS2ResentAfterRelease = c.in.ResentAfterRelease
	c.mu.Unlock()
	s.DroppedQoS0 = c.disp.droppedCount()
	return s
}
