package mqttconn_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/mqttconn"
	"github.com/fennec-mqtt/fennec/packet"
)

// TestConnackKeptEncoded: the connection keeps the broker's CONNACK encoded, not as a decoded
// packet of 320 bytes per connection; Connack gives back every field of it, on each call a copy
// of its own that the caller may change.
func TestConnackKeptEncoded(t *testing.T) {
	v5 := &packet.Connack{SessionPresent: true, ReasonCode: 0}
	p := &v5.Props
	p.Set(packet.PropReceiveMaximum)
	p.ReceiveMaximum = 17
	p.Set(packet.PropMaximumQoS)
	p.MaximumQoS = 1
	p.Set(packet.PropRetainAvailable)
	p.RetainAvailable = 0
	p.Set(packet.PropMaximumPacketSize)
	p.MaximumPacketSize = 4096
	p.Set(packet.PropAssignedClientIdentifier)
	p.AssignedClientIdentifier = "assigned-7"
	p.Set(packet.PropTopicAliasMaximum)
	p.TopicAliasMaximum = 9
	p.Set(packet.PropReasonString)
	p.ReasonString = "welcome"
	p.UserProperties = []packet.UserProperty{{Key: "region", Value: "eu"}, {Key: "region", Value: "us"}}
	p.Set(packet.PropServerKeepAlive)
	p.ServerKeepAlive = 11
	p.Set(packet.PropResponseInformation)
	p.ResponseInformation = "replies/"
	for _, tc := range []struct {
		v   packet.Version
		ack *packet.Connack
	}{
		{packet.V5, v5},
		{packet.V311, &packet.Connack{SessionPresent: true}},
	} {
		t.Run(tc.v.String(), func(t *testing.T) {
			b, err := tc.ack.Append(nil, tc.v)
			if err != nil {
				t.Fatal(err)
			}
			o := hostileBroker(t, tc.v, b, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, ack, err := mqttconn.Dial(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(nil)
			first := c.Connack()
			if first == nil || !reflect.DeepEqual(*first, *ack) || !reflect.DeepEqual(*first, *tc.ack) {
				t.Fatalf("Connack() %+v\nDial gave %+v\nbroker sent %+v", first, ack, tc.ack)
			}
			first.SessionPresent = false
			first.Props.ReasonString = "changed by the caller"
			if second := c.Connack(); second == first || !reflect.DeepEqual(*second, *tc.ack) {
				t.Fatalf("a change to one Connack() result shows in the next: %+v", second)
			}
		})
	}
}
