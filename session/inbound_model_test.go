package session_test

import (
	"testing"

	"github.com/fennec-mqtt/fennec/session"
	"pgregory.net/rapid"
)

// TestInboundModel: a broker that keeps to the protocol sends QoS 1 and 2 messages, sends them
// again with DUP while unacknowledged, drops the connection and resends on reconnect, or loses
// the session; the handler runs late. Each QoS 2 message reaches the application at most once,
// and exactly once when the session was never lost; each QoS 1 message at least once; an honest
// broker is never counted as resending after PUBREL.
func TestInboundModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := session.NewInbound()
		type bmsg struct {
			id       uint16
			qos      byte
			rec      bool // PUBREC received: the broker now sends PUBREL
			finished bool
		}
		var msgs []*bmsg
		unacked := map[uint16]int{} // broker: packet ID → message
		var handlerQ []int          // delivered, waiting for the handler
		delivered := map[int]int{}
		lost := map[int]bool{} // sent before the broker lost the session
		nextID := uint16(1)
		send := func(i int, dup bool) {
			m := msgs[i]
			if m.rec {
				if in.Release(m.id) {
					m.finished = true
					delete(unacked, m.id)
				} else if !lost[i] {
					t.Fatalf("PUBREL for message %d (ID %d) unknown to the client", i, m.id)
				}
				return
			}
			r, resent := in.Receive(m.id, m.qos, dup, uint64(i))
			if resent {
				t.Fatalf("message %d counted as resent after PUBREL by an honest broker", i)
			}
			if r == session.Deliver {
				delivered[i]++
				handlerQ = append(handlerQ, i)
			}
			if r == session.Rerec {
				m.rec = true
			}
		}
		t.Repeat(map[string]func(*rapid.T){
			"publish": func(t *rapid.T) {
				if len(unacked) >= 20 {
					return
				}
				for unacked[nextID] != 0 || nextID == 0 {
					nextID++
				}
				qos := byte(rapid.IntRange(1, 2).Draw(t, "qos"))
				msgs = append(msgs, &bmsg{id: nextID, qos: qos})
				unacked[nextID] = len(msgs) - 1 + 1 // +1: 0 means free
				send(len(msgs)-1, false)
				nextID++
			},
			"resend": func(t *rapid.T) {
				for _, i1 := range unacked {
					send(i1-1, true)
					return
				}
			},
			"handler": func(t *rapid.T) {
				if len(handlerQ) == 0 {
					return
				}
				i := handlerQ[0]
				handlerQ = handlerQ[1:]
				m := msgs[i]
				if !in.Handled(m.id, m.qos) {
					return
				}
				if m.qos == 1 {
					m.finished = true
					delete(unacked, m.id)
				} else {
					m.rec = true
					send(i, false) // PUBREL
				}
			},
			"reconnect": func(t *rapid.T) {
				if rapid.Bool().Draw(t, "sessionLost") {
					in.SessionLost()
					handlerQ = nil
					for _, i1 := range unacked {
						lost[i1-1] = true
						msgs[i1-1].finished = true
					}
					clear(unacked)
					return
				}
				for _, i1 := range unacked {
					send(i1-1, true)
				}
			},
		})
		// Drain: the handler catches up, the broker resends what is unacknowledged.
		for len(handlerQ) > 0 || len(unacked) > 0 {
			for len(handlerQ) > 0 {
				i := handlerQ[0]
				handlerQ = handlerQ[1:]
				m := msgs[i]
				if in.Handled(m.id, m.qos) {
					if m.qos == 1 {
						m.finished = true
						delete(unacked, m.id)
					} else {
						m.rec = true
					}
				}
			}
			for _, i1 := range unacked {
				send(i1-1, true)
			}
		}
		for i, m := range msgs {
			d := delivered[i]
			switch {
			case m.qos == 2 && d > 1:
				t.Fatalf("QoS 2 message %d delivered %d times", i, d)
			case lost[i]:
			case d == 0:
				t.Fatalf("QoS %d message %d never delivered", m.qos, i)
			}
		}
		if in.ResentAfterRelease != 0 {
			t.Fatalf("ResentAfterRelease %d with an honest broker", in.ResentAfterRelease)
		}
	})
}
