package packet_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/fennec-mqtt/fennec/packet"
)

func props5(f func(p *packet.Properties)) packet.Properties {
	var p packet.Properties
	f(&p)
	return p
}

// roundTripCases returns valid packets for v, each of which must survive encode → decode.
func roundTripCases(v packet.Version) []packet.Packet {
	cs := []packet.Packet{
		&packet.Connect{Version: v, ProtocolName: "MQTT", CleanStart: true, KeepAlive: 60, ClientID: "c1"},
		&packet.Connect{Version: v, ProtocolName: "MQTT", KeepAlive: 10, ClientID: "dev-ü", Username: "u", HasUsername: true,
			Password: []byte("p\x00w"), HasPassword: true,
			Will: &packet.Will{Topic: "last/will", Payload: []byte("bye"), QoS: packet.QoS1, Retain: true}},
		&packet.Connect{Version: v, ProtocolName: "MQTT", CleanStart: true, ClientID: "", Username: "", HasUsername: true},
		&packet.Connack{SessionPresent: true},
		&packet.Connack{ReasonCode: 5},
		&packet.Publish{Topic: "a/b", Payload: []byte("hello")},
		&packet.Publish{Topic: "a/b", QoS: packet.QoS1, PacketID: 1, Dup: true, Retain: true, Payload: bytes.Repeat([]byte{0xAA}, 300)},
		&packet.Publish{Topic: "€/x", QoS: packet.QoS2, PacketID: 65535},
		&packet.Puback{PacketID: 7},
		&packet.Pubrec{PacketID: 8},
		&packet.Pubrel{PacketID: 9},
		&packet.Pubcomp{PacketID: 10},
		&packet.Subscribe{PacketID: 11, Subscriptions: []packet.Subscription{{Filter: "a/+/c", QoS: 1}, {Filter: "#", QoS: 2}, {Filter: "$SYS/#"}}},
		&packet.Suback{PacketID: 11, ReasonCodes: []packet.ReasonCode{0, 1, 2, 0x80}},
		&packet.Unsubscribe{PacketID: 12, Filters: []string{"a/+/c", "#"}},
		&packet.Pingreq{},
		&packet.Pingresp{},
		&packet.Disconnect{},
	}
	if v == packet.V311 {
		return append(cs, &packet.Unsuback{PacketID: 12})
	}
	// MQTT 5 only.
	cs[4] = &packet.Connack{ReasonCode: packet.NotAuthorized}
	return append(cs,
		&packet.Unsuback{PacketID: 12, ReasonCodes: []packet.ReasonCode{0, packet.NoSubscriptionExisted}},
		&packet.Connect{Version: v, ProtocolName: "MQTT", CleanStart: true, ClientID: "p",
			Password: []byte("secret"), HasPassword: true,
			Props: props5(func(p *packet.Properties) {
				p.SetSessionExpiryInterval(3600)
				p.SetReceiveMaximum(20)
				p.SetMaximumPacketSize(1 << 20)
				p.SetTopicAliasMaximum(10)
				p.SetRequestResponseInformation(1)
				p.SetRequestProblemInformation(0)
				p.SetAuthenticationMethod("SCRAM-SHA-1")
				p.SetAuthenticationData([]byte{1, 2, 3})
				p.AddUserProperty("k", "v")
				p.AddUserProperty("k", "v2")
			}),
			Will: &packet.Will{Topic: "w", QoS: 2, Payload: []byte{0}, Props: props5(func(p *packet.Properties) {
				p.SetWillDelayInterval(5)
				p.SetPayloadFormat(1)
				p.SetMessageExpiryInterval(60)
				p.SetContentType("text/plain")
				p.SetResponseTopic("reply/to")
				p.SetCorrelationData([]byte("id-1"))
				p.AddUserProperty("a", "b")
			})}},
		&packet.Connack{Props: props5(func(p *packet.Properties) {
			p.SetSessionExpiryInterval(0)
			p.SetReceiveMaximum(100)
			p.SetMaximumQoS(1)
			p.SetRetainAvailable(0)
			p.SetMaximumPacketSize(65536)
			p.SetAssignedClientIdentifier("auto-1")
			p.SetTopicAliasMaximum(5)
			p.SetReasonString("welcome")
			p.SetWildcardSubscriptionAvailable(1)
			p.SetSubscriptionIdentifiersAvailable(1)
			p.SetSharedSubscriptionAvailable(0)
			p.SetServerKeepAlive(30)
			p.SetResponseInformation("resp/")
			p.SetServerReference("other:1883")
			p.SetAuthenticationMethod("m")
		})},
		&packet.Publish{QoS: 1, PacketID: 3, Topic: "", Payload: []byte("x"), Props: props5(func(p *packet.Properties) {
			p.SetTopicAlias(4)
			p.SubscriptionIdentifiers = []uint32{1, 268435455}
			p.SetPayloadFormat(1)
			p.SetMessageExpiryInterval(9)
		})},
		&packet.Puback{PacketID: 7, ReasonCode: packet.NoMatchingSubscribers},
		&packet.Puback{PacketID: 7, ReasonCode: packet.QuotaExceeded, Props: props5(func(p *packet.Properties) { p.SetReasonString("full") })},
		&packet.Pubrec{PacketID: 8, ReasonCode: packet.PayloadFormatInvalid},
		&packet.Pubrel{PacketID: 9, ReasonCode: packet.PacketIdentifierNotFound},
		&packet.Pubcomp{PacketID: 10, Props: props5(func(p *packet.Properties) { p.AddUserProperty("x", "") })},
		&packet.Subscribe{PacketID: 13, Subscriptions: []packet.Subscription{
			{Filter: "a/#", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
			{Filter: "$share/g/a/+", QoS: 0, RetainHandling: 1}},
			Props: props5(func(p *packet.Properties) { p.SubscriptionIdentifiers = []uint32{42} })},
		&packet.Suback{PacketID: 13, ReasonCodes: []packet.ReasonCode{packet.GrantedQoS1, packet.SharedSubscriptionsNotSupported},
			Props: props5(func(p *packet.Properties) { p.SetReasonString("partly") })},
		&packet.Unsubscribe{PacketID: 14, Filters: []string{"x"}, Props: props5(func(p *packet.Properties) { p.AddUserProperty("u", "1") })},
		&packet.Disconnect{ReasonCode: packet.DisconnectWithWill},
		&packet.Disconnect{ReasonCode: packet.ServerMoved, Props: props5(func(p *packet.Properties) {
			p.SetServerReference("b:1883")
			p.SetSessionExpiryInterval(10)
		})},
		&packet.Auth{},
		&packet.Auth{ReasonCode: packet.ContinueAuthentication, Props: props5(func(p *packet.Properties) {
			p.SetAuthenticationMethod("SCRAM-SHA-1")
			p.SetAuthenticationData([]byte("challenge"))
		})},
	)
}

func TestRoundTrip(t *testing.T) {
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		for i, p := range roundTripCases(v) {
			b, err := p.Append(nil, v)
			if err != nil {
				t.Errorf("%v #%d %T: Append: %v", v, i, p, err)
				continue
			}
			q, err := packet.Unmarshal(v, b)
			if err != nil {
				t.Errorf("%v #%d %T: Unmarshal(% x): %v", v, i, p, b, err)
				continue
			}
			want := p
			if v == packet.V311 {
				want = stripProps(p)
			}
			if !reflect.DeepEqual(q, want) {
				t.Errorf("%v #%d: decoded\n %+v\nwant\n %+v", v, i, q, want)
			}
			b2, err := q.Append(nil, v)
			if err != nil || !bytes.Equal(b, b2) {
				t.Errorf("%v #%d %T: re-encode: %v\n% x\n% x", v, i, p, err, b, b2)
			}
		}
	}
}

// stripProps returns p as 3.1.1 decodes it: no properties.
func stripProps(p packet.Packet) packet.Packet {
	if c, ok := p.(*packet.Connect); ok {
		c2 := *c
		c2.Props = packet.Properties{}
		if c.Will != nil {
			w := *c.Will
			w.Props = packet.Properties{}
			c2.Will = &w
		}
		return &c2
	}
	return p
}
