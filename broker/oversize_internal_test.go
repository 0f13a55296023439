package broker

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"pgregory.net/rapid"
)

// tooLarge agrees with the size of the packet as mochi encodes it for a re-send to an MQTT 5
// client, for every mix of topic, payload and properties, at and around the limit: the bounds
// it settles most messages with never decide wrongly.
func TestTooLargeMatchesEncoding(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: byte(rapid.IntRange(0, 2).Draw(t, "qos"))},
			PacketID:  1,
			TopicName: strings.Repeat("t", rapid.IntRange(1, 300).Draw(t, "topic")),
			Payload:   bytes.Repeat([]byte("p"), rapid.IntRange(0, 3000).Draw(t, "payload")),
		}
		if rapid.Bool().Draw(t, "expires") {
			pk.Expiry = 2000
		}
		pk.Properties.ContentType = strings.Repeat("c", rapid.IntRange(0, 50).Draw(t, "ct"))
		pk.Properties.CorrelationData = bytes.Repeat([]byte("d"), rapid.IntRange(0, 50).Draw(t, "cd"))
		for i := range rapid.IntRange(0, 4).Draw(t, "user") {
			pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: strings.Repeat("k", i+1), Val: strings.Repeat("v", rapid.IntRange(0, 100).Draw(t, "val"))})
		}
		for range rapid.IntRange(0, 3).Draw(t, "subids") {
			pk.Properties.SubscriptionIdentifier = append(pk.Properties.SubscriptionIdentifier, rapid.IntRange(1, 268435455).Draw(t, "subid"))
		}
		enc := pk
		enc.ProtocolVersion = 5
		enc.FixedHeader.Dup = true
		if enc.Expiry > 0 {
			enc.Properties.MessageExpiryInterval = 1 << 31
		}
		var buf bytes.Buffer
		if err := enc.PublishEncode(&buf); err != nil {
			t.Fatal(err)
		}
		size := buf.Len()
		limit := uint32(max(1, size+rapid.IntRange(-40, 40).Draw(t, "around")))
		if got, want := tooLarge(pk, limit), uint32(size) > limit; got != want {
			t.Fatalf("tooLarge(%d-byte packet, limit %d) = %v", size, limit, got)
		}
		if tooLarge(pk, 0) {
			t.Fatal("a limit of 0 (none) refused a packet")
		}
	})
}

// Messages routed during a takeover and handed on to the new connection (takeover.go) of an
// MQTT 5 client with a Maximum Packet Size and no Receive Maximum: one too large for it is
// discarded, and the ones after it are still sent. Refused by the write gate, it used to stop
// the hand-on: the rest waited, stored, for the next connection.
func TestHandOnTooLarge(t *testing.T) {
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

	server, client := net.Pipe()
	defer client.Close()
	cl := srv.NewClient(server, "tcp", "c1", false)
	cl.Properties.ProtocolVersion = 5
	cl.Properties.Props.MaximumPacketSize = 64
	h.sessions.Store(cl, &session{})
	connect := packets.Packet{ProtocolVersion: 5}
	h.OnSessionEstablish(cl, connect)
	cl.State.Inflight = old.State.Inflight.Clone()
	old.ClearInflights()
	for i, p := range []string{strings.Repeat("x", 200), "small-1", "small-2"} {
		pk := msg(uint16(i+1), p)
		old.State.Inflight.Set(pk)
		h.OnQosPublish(old, pk, pk.Created, 0)
	}
	srv.Clients.Add(cl)
	h.OnPacketSent(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}}, nil)

	got := make(chan string, 4)
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
			props := int(body[4+l]) // one-byte property length: these packets have few
			got <- string(body[5+l+props:])
		}
	}()
	done := make(chan struct{})
	go func() { h.OnSessionEstablished(cl, connect); close(done) }()
	var recv []string
	for len(recv) < 2 {
		select {
		case p := <-got:
			recv = append(recv, p)
		case <-time.After(10 * time.Second): // bounds a broken run only
			t.Fatalf("sent only %q: the hand-on stopped at the message too large for the client", recv)
		}
	}
	<-done
	if recv[0] != "small-1" || recv[1] != "small-2" {
		t.Fatalf("sent %q, want small-1, small-2", recv)
	}
	for _, pk := range cl.State.Inflight.GetAll(false) {
		if len(pk.Payload) > 64 {
			t.Fatal("the message too large for the client is still stored")
		}
	}
}
