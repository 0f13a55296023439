package broker

import (
	"bytes"
	"log/slog"
	"net"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Pins of mochi's behaviour that the broker's own code relies on (the seam is listed in
// docs/broker.md, "What the broker does on top of mochi"). Each test names the file that relies
// on it; an upgrade of mochi that changes the behaviour fails here instead of in production.

// order.go: GetAll returns a session's messages sorted by the low 16 bits of their stored
// second, which prepareResend's rewriting of Created relies on.
func TestMochiPinGetAllOrder(t *testing.T) {
	in := mqtt.NewInflights()
	for i, created := range []int64{70000, 5, 65537, 3} { // low 16 bits: 4464, 5, 1, 3
		in.Set(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: uint16(i + 1), Created: created})
	}
	var got []int64
	for _, pk := range in.GetAll(false) {
		got = append(got, pk.Created)
	}
	want := []int64{65537, 3, 5, 70000}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("GetAll order by stored second %v, want %v (sorted by the low 16 bits)", got, want)
		}
	}
}

// expiry.go and will.go: Copy carries Connect.Keepalive (the no-expiry mark) and user
// properties (the will's carried properties) into each delivery; PUBLISH encoding writes
// neither Connect.Keepalive nor anything else of Connect.
func TestMochiPinCopyAndEncode(t *testing.T) {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "a/b", PacketID: 3,
		Payload: []byte("x"), ProtocolVersion: 5}
	pk.Connect.Keepalive = noExpiryMark
	pk.Properties.User = []packets.UserProperty{{Key: willPropsKey, Val: `{"ct":"t"}`}}
	cp := pk.Copy(false)
	if cp.Connect.Keepalive != noExpiryMark {
		t.Fatal("Copy drops Connect.Keepalive: the no-expiry mark would be lost (expiry.go)")
	}
	if len(cp.Properties.User) != 1 || cp.Properties.User[0].Key != willPropsKey {
		t.Fatal("Copy drops user properties: a will's carried properties would be lost (will.go)")
	}
	var marked, plain bytes.Buffer
	if err := pk.PublishEncode(&marked); err != nil {
		t.Fatal(err)
	}
	pk.Connect.Keepalive = 0
	if err := pk.PublishEncode(&plain); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(marked.Bytes(), plain.Bytes()) {
		t.Fatal("PUBLISH encoding writes Connect.Keepalive: the mark would reach clients (expiry.go)")
	}
}

// flow.go (gateWrite): a packet whose type OnPacketEncode set to Reserved is not written.
func TestMochiPinReservedNotWritten(t *testing.T) {
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	cl := srv.NewClient(a, "pin", "pin", false)
	cl.Properties.ProtocolVersion = 5
	err := cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Reserved}})
	if err == nil {
		t.Fatal("mochi wrote a packet of the reserved type: gateWrite's refusal would reach the client")
	}
}

// flow.go and shelve: with the send quota reset to zero and a zero maximum, a message mochi
// stores for the client is not marked "send when the quota allows" (Expiry −1) and not stored
// again after OnQosPublish, so mochi's NextImmediate path (which takes a read lock twice) is
// never taken, and a message the broker moved out of the table stays out.
func TestMochiPinZeroQuotaNoMark(t *testing.T) {
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	cl := srv.NewClient(a, "pin", "pin-quota", false)
	cl.Properties.ProtocolVersion = 5
	cl.Properties.Props.ReceiveMaximum = 10
	cl.Stop(nil) // offline: nothing is written
	srv.Clients.Add(cl)
	srv.Topics.Subscribe(cl.ID, packets.Subscription{Filter: "pin/t", Qos: 1})
	cl.State.Inflight.ResetSendQuota(0)
	if err := srv.Publish("pin/t", []byte("x"), false, 1); err != nil {
		t.Fatal(err)
	}
	all := cl.State.Inflight.GetAll(false)
	if len(all) != 1 {
		t.Fatalf("%d messages stored for the offline client, want 1", len(all))
	}
	if all[0].Expiry < 0 {
		t.Fatal("mochi marked the message to be sent when its quota allows, though the quota's maximum is zero")
	}
}
