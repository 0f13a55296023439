package broker

import (
	"io"
	"net"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// A routed message's own copy in mochi's write queue can reach the broker's write gate between
// the delivery queue allowing its write and making it (pump): the copy goes out, and the
// queue's write is refused. The message was sent all the same: it must stay counted against
// the Receive Maximum, and must not be sent a second time. The queue used to take the refusal
// for a failed write: it stopped counting the message (one more than the Receive Maximum could
// then be sent, TestPacedPublisherReceiveMaximum saw 11 of 10 once under load) and sent it
// again from the head of the queue.
func TestFlowWriteTakenByMochisCopy(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	h := b.hook
	server, client := net.Pipe()
	defer client.Close()
	go io.Copy(io.Discard, client)
	cl := b.srv.NewClient(server, "tcp", "flow-1", false)
	cl.Properties.ProtocolVersion = 5
	cl.Properties.Props.ReceiveMaximum = 2
	s := &session{}
	h.sessions.Store(cl, s)
	h.startFlow(cl, s)

	var mochiWrites int
	beforeFlowWrite = func(cl *mqtt.Client, pk packets.Packet) {
		// mochi's write loop, with its copy of the same message (OnPacketEncode, then the write)
		if out := h.gateWrite(cl, pk); out.FixedHeader.Type == packets.Publish {
			mochiWrites++
		}
	}
	defer func() { beforeFlowWrite = nil }()

	route := func(payload string) uint16 {
		id, err := cl.NextPacketID()
		if err != nil {
			t.Fatal(err)
		}
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: uint16(id),
			TopicName: "t", Payload: []byte(payload), Created: 1000}
		cl.State.Inflight.Set(pk)
		h.OnQosPublish(cl, pk, pk.Created, 0)
		return uint16(id)
	}
	first := route("a")
	if mochiWrites != 1 {
		t.Fatalf("mochi's copy written %d times, want 1", mochiWrites)
	}
	s.mu.Lock()
	counted, open := s.flow.sent[first], len(s.flow.sent)
	waiting := len(s.flow.q) - s.flow.head
	s.mu.Unlock()
	if !counted || open != 1 {
		t.Fatalf("the message mochi's copy sent is not counted against the Receive Maximum (%d counted)", open)
	}
	if waiting != 0 {
		t.Fatalf("%d messages still queued: the message would be sent again", waiting)
	}
	beforeFlowWrite = nil
	route("b")
	route("c") // beyond the Receive Maximum of 2: waits
	s.mu.Lock()
	open, waiting = len(s.flow.sent), len(s.flow.q)-s.flow.head
	s.mu.Unlock()
	if open != 2 || waiting != 1 {
		t.Fatalf("%d unacknowledged and %d waiting, want 2 and 1 (Receive Maximum 2)", open, waiting)
	}
}
