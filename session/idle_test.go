package session_test

import (
	"testing"

	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/session"
)

var (
	sinkIn  *session.Inbound
	sinkOut *session.Outbound[struct{}]
)

// An idle connection's session holds no maps: they are made when the first message needs
// them, and the machines work from there (docs/benchmarks.md, heap per idle connection).
func TestIdleSessionAllocatesOnlyItself(t *testing.T) {
	// The machines go to package variables so that they escape to the heap, as a client's do
	// (a discarded result may be allocated on the stack and count nothing).
	if n := testing.AllocsPerRun(100, func() { sinkIn = session.NewInbound() }); n > 1 {
		t.Errorf("NewInbound: %v allocations, want 1", n)
	}
	if n := testing.AllocsPerRun(100, func() { sinkOut = session.NewOutbound[struct{}](100, 100) }); n > 1 {
		t.Errorf("NewOutbound: %v allocations, want 1", n)
	}

	in := session.NewInbound()
	if in.Release(7) || in.Handled(7, 2) || in.Unacked() != 0 {
		t.Fatal("an empty machine knows packet ID 7")
	}
	in.Unpending(7)
	if len(in.SessionLost()) != 0 {
		t.Fatal("an empty machine lost a delivered message")
	}
	if r, _ := in.Receive(7, 2, false, 1); r != session.Deliver {
		t.Fatalf("first QoS 2 PUBLISH: %v, want Deliver", r)
	}
	if !in.Handled(7, 2) || !in.Release(7) {
		t.Fatal("QoS 2 handshake not completed")
	}
	if _, resent := in.Receive(7, 2, true, 1); !resent {
		t.Error("the same message resent after PUBREL was not recognised")
	}

	out := session.NewOutbound[struct{}](10, 10)
	e := &session.Entry[struct{}]{Pub: &packet.Publish{Topic: "t", QoS: 1}}
	out.Take(e)
	out.Commit(e)
	if e.Pub.PacketID == 0 {
		t.Fatal("QoS 1 message got no packet ID")
	}
}
