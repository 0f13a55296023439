package broker

import (
	"testing"

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
	b.hook.prepareResend(cl)
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
