package broker

import (
	"bytes"
	"strings"
	"testing"

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
