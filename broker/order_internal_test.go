package broker

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

func TestOrderedSeconds(t *testing.T) {
	const block = 1 << 16
	for _, tc := range []struct {
		name string
		orig []int64
		want []int64
	}{
		{"distinct seconds kept", []int64{100, 105, 109}, []int64{100, 105, 109}},
		{"one second spread", []int64{100, 100, 100, 101}, []int64{100, 101, 102, 103}},
		{"racing publishers", []int64{101, 100, 101}, []int64{101, 102, 103}},
		// 3·65536-2 … crosses a multiple of 65 536: every second moves to the last block.
		{"low 16 bits wrap", []int64{3*block - 2, 3*block - 1, 3 * block, 3*block + 5}, []int64{3 * block, 3*block + 1, 3*block + 2, 3*block + 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := orderedSeconds(tc.orig[0], len(tc.orig), func(i int) int64 { return tc.orig[i] })
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
				if i > 0 && uint16(got[i]) <= uint16(got[i-1]) {
					t.Fatalf("%v: low 16 bits do not increase at %d", got, i)
				}
				if got[i] < tc.orig[i] {
					t.Fatalf("%v: second %d moved earlier than %d", got, i, tc.orig[i])
				}
			}
		})
	}
}

// prepareResend on a session whose messages were stored in one second, in an order mochi's map
// does not keep, the later ones held back by the Receive Maximum: mochi's own ordering of the
// session (Inflight.GetAll) then yields the stored order, and no message keeps the hold mark.
func TestPrepareResend(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cl := b.srv.NewClient(nil, "test", "c1", false)
	const n = 50
	for i := range n {
		id := uint16(n - i) // identifiers descending: their order is not the stored order
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: id,
			TopicName: "t", Payload: []byte{byte(i)}, Created: 1000}
		if i >= 10 {
			pk.Expiry = -1 // held back by the client's Receive Maximum
		}
		cl.State.Inflight.Set(pk)
		b.hook.OnQosPublish(cl, pk, pk.Created, 0)
	}
	b.hook.prepareResend(cl, 0, nil) // no Receive Maximum: nothing held back
	all := cl.State.Inflight.GetAll(false)
	if len(all) != n {
		t.Fatalf("%d messages, want %d", len(all), n)
	}
	for i, pk := range all {
		if int(pk.Payload[0]) != i {
			t.Fatalf("position %d holds message %d", i, pk.Payload[0])
		}
		if pk.Expiry < 0 {
			t.Fatalf("message %d still held back", i)
		}
		// The expiry given back counts from the arrival, not from the rewritten second.
		if want := 1000 + b.srv.Options.Capabilities.MaximumMessageExpiryInterval; i >= 10 && pk.Expiry != want {
			t.Fatalf("message %d expiry %d, want %d", i, pk.Expiry, want)
		}
	}
}

// A message mochi stored in the session's table but whose OnQosPublish has not run yet (mochi
// stores first, then calls the hook) is the newest message of the session: a reconnect at that
// moment re-sends it last. It used to sort first, with no recorded place (seen once under load:
// TestShelfToV311 got "s-30" before "s-01").
func TestPrepareResendRoutedMeanwhile(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, tc := range []struct {
		name    string
		created func(i int) int64
		shelf   bool
	}{
		{"same second", func(int) int64 { return 1000 }, false},
		{"later second", func(i int) int64 { return 1000 + int64(i) }, false},
		{"earlier second", func(i int) int64 { return 1000 - int64(i) }, false}, // a clock stepped back
		{"shelved between", func(int) int64 { return 1000 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := b.srv.NewClient(nil, "test", "c-"+tc.name, false)
			const n = 20
			var shelf []heldMsg
			for i := range n {
				pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: uint16(i + 1),
					TopicName: "t", Payload: []byte{byte(i)}, Created: tc.created(i)}
				switch {
				case tc.shelf && i >= 2 && i < n-1: // kept on the session's list (shelve)
					shelf = append(shelf, heldMsg{pk: pk, seq: sendSeq.Add(1), fresh: true})
				case i < n-1:
					cl.State.Inflight.Set(pk)
					b.hook.OnQosPublish(cl, pk, pk.Created, 0)
				default: // the last: stored, its hook not run yet
					cl.State.Inflight.Set(pk)
				}
			}
			b.hook.prepareResend(cl, 0, shelf)
			all := cl.State.Inflight.GetAll(false)
			if len(all) != n {
				t.Fatalf("%d messages, want %d", len(all), n)
			}
			for i, pk := range all {
				if int(pk.Payload[0]) != i {
					got := make([]int, len(all))
					for j, p := range all {
						got[j] = int(p.Payload[0])
					}
					t.Fatalf("re-send order %v: position %d holds message %d", got, i, pk.Payload[0])
				}
			}
		})
	}
}

// A session takeover as mochi performs it (inheritClientSession, then Clients.Add), with a
// message routed to the old client after the copy and another after the clearing: both reach
// the new client after the message stored before, with its packet identifiers, and stay stored
// until acknowledged.
func TestTakeoverHandsOnLateMessages(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	srv, h := b.srv, b.hook
	msg := func(id uint16, payload string) packets.Packet {
		return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: id,
			TopicName: "t", Payload: []byte(payload), Created: 1000}
	}
	old := srv.NewClient(nil, "tcp", "c1", false)
	srv.Clients.Add(old)
	stored := msg(1, "stored")
	old.State.Inflight.Set(stored)
	h.OnQosPublish(old, stored, stored.Created, 0)

	server, client := net.Pipe()
	defer client.Close()
	cl := srv.NewClient(server, "tcp", "c1", false)
	cl.Properties.ProtocolVersion = 4
	h.sessions.Store(cl, &session{})
	connect := packets.Packet{ProtocolVersion: 4}
	h.OnSessionEstablish(cl, connect)

	// inheritClientSession: copy the table, route a message, clear the old table.
	cl.State.Inflight = old.State.Inflight.Clone()
	afterCopy := msg(2, "after copy")
	old.State.Inflight.Set(afterCopy)
	h.OnQosPublish(old, afterCopy, afterCopy.Created, 0)
	old.ClearInflights()
	afterClear := msg(3, "after clear")
	old.State.Inflight.Set(afterClear)
	h.OnQosPublish(old, afterClear, afterClear.Created, 0)
	srv.Clients.Add(cl)
	// mochi writes the CONNACK next: packets for cl may go out after it (connackfirst.go)
	h.OnPacketSent(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}}, nil)

	type wire struct {
		id      uint16
		payload string
	}
	got := make(chan wire, 4)
	go func() {
		r := bufio.NewReader(client)
		for {
			if _, err := r.ReadByte(); err != nil {
				close(got)
				return
			}
			n, shift := 0, 0
			for {
				d, _ := r.ReadByte()
				n |= int(d&0x7f) << shift
				shift += 7
				if d&0x80 == 0 {
					break
				}
			}
			body := make([]byte, n)
			if _, err := io.ReadFull(r, body); err != nil {
				close(got)
				return
			}
			l := int(body[0])<<8 | int(body[1])
			got <- wire{uint16(body[2+l])<<8 | uint16(body[3+l]), string(body[4+l:])}
		}
	}()
	done := make(chan struct{})
	go func() { h.OnSessionEstablished(cl, connect); close(done) }()
	var recv []wire
	for len(recv) < 2 {
		select {
		case w := <-got:
			recv = append(recv, w)
		case <-time.After(10 * time.Second): // bounds a broken run only
			t.Fatalf("sent only %v", recv)
		}
	}
	<-done
	if recv[0].payload != "after copy" || recv[1].payload != "after clear" {
		t.Fatalf("sent %v, want the message routed after the copy, then the one after the clearing", recv)
	}
	for _, w := range recv {
		pk, ok := cl.State.Inflight.Get(w.id)
		if !ok || string(pk.Payload) != w.payload {
			t.Fatalf("message %q not stored under its identifier %d", w.payload, w.id)
		}
		if w.id == 1 {
			t.Fatalf("message %q sent with identifier 1, which names the stored message", w.payload)
		}
	}
	if pk, ok := cl.State.Inflight.Get(1); !ok || string(pk.Payload) != "stored" {
		t.Fatal("the message stored before the takeover is gone")
	}
	if old.State.Inflight.Len() != 0 {
		t.Fatalf("%d messages left with the old client", old.State.Inflight.Len())
	}

	// A routing that looked up the old client before the switch reaches it only now, after the
	// takeover ended (publishToClient: the ACL check, then the store, then OnQosPublish).
	if !h.OnACLCheck(old, "t", false) {
		t.Fatal("a delivery to the replaced client is refused: the message would be dropped")
	}
	stale := msg(4, "stale route")
	old.State.Inflight.Set(stale)
	h.OnQosPublish(old, stale, stale.Created, 0)
	select {
	case w := <-got:
		if w.payload != "stale route" {
			t.Fatalf("sent %v, want the message routed to the replaced client", w)
		}
		if pk, ok := cl.State.Inflight.Get(w.id); !ok || string(pk.Payload) != w.payload {
			t.Fatalf("message %q not stored under its identifier %d", w.payload, w.id)
		}
	case <-time.After(10 * time.Second): // bounds a broken run only
		t.Fatal("the message routed to the replaced client was never sent")
	}
	if old.State.Inflight.Len() != 0 {
		t.Fatalf("%d messages left with the old client", old.State.Inflight.Len())
	}
}

// TestConnackFirst: a packet mochi writes to a connection between registering it and writing
// its CONNACK waits for the CONNACK [MQTT-3.2.0-1].
func TestConnackFirst(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	srv, h := b.srv, b.hook
	server, client := net.Pipe()
	defer client.Close()
	cl := srv.NewClient(server, "tcp", "c1", false)
	cl.Properties.ProtocolVersion = 4
	h.OnSessionEstablish(cl, packets.Packet{ProtocolVersion: 4})

	types := make(chan byte, 2)
	go func() {
		r := bufio.NewReader(client)
		for {
			first, err := r.ReadByte()
			if err != nil {
				return
			}
			n, _ := r.ReadByte() // short packets: one length byte
			if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
				return
			}
			types <- first >> 4
		}
	}()
	published := make(chan error, 1)
	go func() {
		published <- cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "t", Payload: []byte("x")})
	}()
	select {
	case typ := <-types:
		t.Fatalf("packet type %d written before the CONNACK", typ)
	case <-time.After(100 * time.Millisecond): // the PUBLISH waits at the gate
	}
	if err := cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}}); err != nil {
		t.Fatal(err)
	}
	if typ := <-types; typ != packets.Connack {
		t.Fatalf("first packet type %d, want CONNACK", typ)
	}
	if typ := <-types; typ != packets.Publish {
		t.Fatalf("second packet type %d, want PUBLISH", typ)
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
}
