package session

// Inbound is the inbound half of an MQTT session as a deterministic state machine: the QoS 1/2
// messages received and not yet acknowledged, and the QoS 2 packet identifiers between PUBREC and
// PUBREL, so that each message reaches the application once per handshake. Like Outbound it does
// no I/O and takes no lock.
//
// Each QoS 2 message carries a fingerprint (of its topic and payload, computed by the caller):
// a broker that sends a message again, marked DUP, after its handshake finished is recognised
// and counted (ResentAfterRelease), though it is delivered again: the protocol makes a PUBLISH
// after PUBCOMP a new message [MQTT-4.3.3-9].
type Inbound struct {
	state    map[uint16]inState
	fp       map[uint16]uint64 // fingerprints of QoS 2 messages in state
	released map[uint16]uint64 // … and of finished handshakes, by the ID's last use

	// ResentAfterRelease counts QoS 2 messages sent again, DUP and identical, after their
	// handshake finished.
	ResentAfterRelease uint64
}

type inState byte

const (
	inPending   inState = 1 // waiting for the handler
	inDelivered inState = 2 // QoS 2 delivered, PUBREC sent, waiting for PUBREL
)

// Receipt is what Receive decided for a PUBLISH.
type Receipt byte

const (
	Deliver   Receipt = iota // a new message: deliver it, then call Handled
	Duplicate                // a duplicate of a message waiting for its handler: drop it (one ack follows)
	Rerec                    // a duplicate of a delivered QoS 2 message: answer PUBREC again, do not deliver
)

// NewInbound returns an empty machine. Its maps are made on first use: an idle connection
// holds none.
func NewInbound() *Inbound { return &Inbound{} }

func (in *Inbound) init() {
	if in.state == nil {
		in.state = map[uint16]inState{}
		in.fp = map[uint16]uint64{}
	}
}

// Restore marks QoS 2 identifiers delivered before a restart (from Store.Load).
func (in *Inbound) Restore(ids []uint16) {
	in.init()
	for _, id := range ids {
		in.state[id] = inDelivered
	}
}

// Receive applies a QoS 1/2 PUBLISH. resent reports a QoS 2 message sent again after its
// handshake finished (counted; it is delivered).
func (in *Inbound) Receive(id uint16, qos byte, dup bool, fp uint64) (r Receipt, resent bool) {
	st := in.state[id]
	if qos == 2 && st == 0 {
		if old, ok := in.released[id]; ok {
			delete(in.released, id)
			if dup && old == fp {
				in.ResentAfterRelease++
				resent = true
			}
		}
	}
	switch st {
	case inDelivered:
		if qos == 2 {
			return Rerec, resent
		}
		// A QoS 1 message with the ID of a QoS 2 one waiting for PUBREL: the broker broke
		// the protocol; it is delivered as the new message it claims to be.
	case inPending:
		return Duplicate, resent
	}
	in.init()
	in.state[id] = inPending
	if qos == 2 {
		in.fp[id] = fp
	} else {
		delete(in.fp, id)
	}
	return Deliver, resent
}

// Unpending forgets a message Receive accepted that will not be delivered (the client stopped or
// the connection closed before it was queued): the broker sends it again.
func (in *Inbound) Unpending(id uint16) {
	if in.state[id] == inPending {
		delete(in.state, id)
		delete(in.fp, id)
	}
}

// Handled records that the handler of a QoS qos message returned. It reports the
// acknowledgement to send: PUBACK (QoS 1), PUBREC (QoS 2; make it durable first), or false when
// the session was lost meanwhile and nothing is to be acknowledged.
func (in *Inbound) Handled(id uint16, qos byte) (ack bool) {
	if in.state[id] != inPending {
		return false
	}
	if qos == 1 {
		delete(in.state, id)
		return true
	}
	in.state[id] = inDelivered
	return true
}

// Release applies a PUBREL. It reports whether the identifier was waiting for it; either way
// PUBCOMP is sent (MQTT 5: with 0x92 when it was not).
func (in *Inbound) Release(id uint16) bool {
	if in.state[id] != inDelivered {
		return false
	}
	delete(in.state, id)
	if fp, ok := in.fp[id]; ok {
		delete(in.fp, id)
		if in.released == nil {
			in.released = map[uint16]uint64{}
		}
		in.released[id] = fp
	}
	return true
}

// SessionLost forgets every message (the broker lost the session) and returns the QoS 2
// identifiers that were delivered, to drop from the store.
func (in *Inbound) SessionLost() []uint16 {
	var delivered []uint16
	for id, st := range in.state {
		if st == inDelivered {
			delivered = append(delivered, id)
		}
	}
	clear(in.state)
	clear(in.fp)
	return delivered
}

// Unacked returns the messages received and not yet acknowledged: pending ones and QoS 2 ones
// waiting for PUBREL (against our Receive Maximum).
func (in *Inbound) Unacked() int { return len(in.state) }

// Unreleased returns the QoS 2 messages delivered and waiting for PUBREL.
func (in *Inbound) Unreleased() int {
	n := 0
	for _, st := range in.state {
		if st == inDelivered {
			n++
		}
	}
	return n
}
