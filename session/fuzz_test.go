package session_test

import (
	"testing"

	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/session"
)

// FuzzSession feeds both state machines arbitrary sequences of inputs: publishes, packets from a
// broker with any type, packet ID and reason code (unknown, duplicate, out of order), written
// and failed writes, drops and reconnects. Whatever arrives, nothing panics, an identifier is
// never in flight for two messages, nothing completes twice, and memory stays within the
// configured bounds.
func FuzzSession(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{0x10, 0x21, 0x30, 0x44, 0x01, 0x00, 0x54, 0x02, 0x00, 0x60, 0x70, 0x81})
	f.Add([]byte{0x12, 0x12, 0x12, 0x31, 0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x06, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const window, maxQueue = 4, 8
		o := session.NewOutbound[int](window, maxQueue)
		done := map[int]bool{}
		o.OnDone = func(e *session.Entry[int], err error) {
			if done[e.Ext] {
				t.Fatalf("entry %d completed twice", e.Ext)
			}
			done[e.Ext] = true
		}
		in := session.NewInbound()
		var sent []*session.Entry[int]
		inflight := map[uint16]*session.Entry[int]{}
		n := 0
		online := false
		next := func() byte {
			if len(ops) == 0 {
				return 0
			}
			b := ops[0]
			ops = ops[1:]
			return b
		}
		for len(ops) > 0 {
			op := next()
			arg := next()
			id := uint16(next())<<8 | uint16(next())
			switch op % 12 {
			case 0: // publish
				qos := packet.QoS(arg % 3)
				if o.Room(qos) {
					e := &session.Entry[int]{P: packet.Publish{Topic: "t", QoS: qos}, Ext: n}
					e.Pub = &e.P
					n++
					o.Take(e)
					if arg&0x80 != 0 {
						o.Abandon(e) // the store write failed
					} else {
						o.Commit(e)
					}
				}
			case 1: // pump
				for {
					e, act := o.Next()
					if act == session.None {
						break
					}
					sent = append(sent, e)
					if e.Pub.QoS > 0 {
						if old := inflight[e.Pub.PacketID]; old != nil && old != e && !old.Done() {
							t.Fatalf("packet ID %d in flight for entries %d and %d", e.Pub.PacketID, old.Ext, e.Ext)
						}
						inflight[e.Pub.PacketID] = e
					}
				}
			case 2, 3, 4: // an acknowledgement of any kind for any ID
				types := []packet.Type{packet.PUBACK, packet.PUBREC, packet.PUBCOMP, packet.PUBREL, packet.PUBLISH}
				o.Ack(types[int(arg)%len(types)], id, packet.ReasonCode(arg&0x90), nil)
			case 5: // a QoS 0 write finished
				if len(sent) > 0 {
					e := sent[0]
					sent = sent[1:]
					if e.Pub.QoS == 0 {
						o.Written0(e, o.Gen(), nil, arg&1 == 1)
					} else if arg&1 == 1 {
						o.Failed(e, o.Gen()-uint64(arg&2>>1), nil)
					}
				}
			case 6:
				o.Down()
				online = false
			case 7:
				o.Up(arg&1 == 1, []int{65535, 1, 3}[int(arg>>1)%3])
				online = true
			case 8: // inbound PUBLISH
				if r, _ := in.Receive(id, 1+arg%2, arg&4 != 0, uint64(arg>>3)); r == session.Deliver && arg&0x80 != 0 {
					in.Unpending(id)
				}
			case 9:
				in.Handled(id, 1+arg%2)
			case 10:
				in.Release(id)
			case 11:
				if arg%4 == 0 {
					in.SessionLost()
				}
			}
			_ = online
			if p := o.Pending(); p > maxQueue+window+session.MaxUnwritten0 {
				t.Fatalf("%d pending, over the bound", p)
			}
			if o.Inflight() > window || o.Inflight() < 0 {
				t.Fatalf("%d in flight, window %d", o.Inflight(), window)
			}
			if in.Unacked() > 65536 {
				t.Fatal("inbound state past the packet ID space")
			}
		}
		// The identifiers in use are exactly those of the QoS 1/2 entries not done.
		if got := o.IDs().Len(); got > o.Pending() {
			t.Fatalf("%d packet IDs in use for %d pending entries", got, o.Pending())
		}
	})
}
