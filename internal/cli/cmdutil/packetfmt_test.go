package cmdutil

import (
	"strings"
	"testing"

	"github.com/fennec-mqtt/fennec/packet"
)

func TestDescribePacket(t *testing.T) {
	var props packet.Properties
	props.SetContentType("text/plain")
	props.AddUserProperty("k", "v")
	for _, tc := range []struct {
		p       packet.Packet
		v       packet.Version
		want    []string
		notWant string
	}{
		{&packet.Connect{Version: packet.V311, ClientID: "dev1", KeepAlive: 30, CleanStart: true, Username: "u", HasUsername: true, Password: []byte("secret"), HasPassword: true},
			packet.V311, []string{"CONNECT MQTT 3.1.1", `client-id="dev1"`, "keepalive=30s", "clean-session", `username="u"`, "password=(not shown)"}, "secret"},
		{&packet.Connack{ReasonCode: 5}, packet.V311, []string{"CONNACK", "return-code=5", "not authorized"}, ""},
		{&packet.Connack{ReasonCode: 0x86}, packet.V5, []string{"reason=0x86"}, ""},
		{&packet.Publish{QoS: 1, PacketID: 7, Topic: "a/b", Payload: []byte{0, 1, 2}, Retain: true, Props: props},
			packet.V5, []string{"PUBLISH id=7 QoS 1 retain", `topic="a/b"`, "payload 0x000102 (3 bytes)", `Content Type="text/plain"`, `User Property="k":"v"`}, ""},
		{&packet.Suback{PacketID: 2, ReasonCodes: []packet.ReasonCode{1, 0x87}}, packet.V5, []string{"SUBACK id=2", "[granted QoS 1]", "[refused 0x87 not authorized]"}, ""},
		{&packet.Pubrec{PacketID: 3}, packet.V5, []string{"PUBREC id=3"}, "reason"},
		{&packet.Puback{PacketID: 4, ReasonCode: 0x87}, packet.V5, []string{"PUBACK id=4 reason=0x87 Not authorized"}, ""},
		{&packet.Pubrel{PacketID: 5, ReasonCode: 0x92}, packet.V5, []string{"PUBREL id=5 reason=0x92"}, ""},
		{&packet.Pubcomp{PacketID: 6}, packet.V311, []string{"PUBCOMP id=6"}, "reason"},
		{&packet.Disconnect{ReasonCode: 0x8E}, packet.V5, []string{"DISCONNECT reason=0x8E"}, ""},
		{&packet.Pingreq{}, packet.V5, []string{"PINGREQ"}, ""},
		{&packet.OversizePublish{QoS: 1, PacketID: 8, Size: 2 << 20, Max: 1 << 20}, packet.V311,
			[]string{"PUBLISH id=8 QoS 1 of 2097152 bytes", "maximum packet size 1048576", "skipped"}, ""},
	} {
		got := describePacket(tc.p, tc.v)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%q lacks %q", got, w)
			}
		}
		if tc.notWant != "" && strings.Contains(got, tc.notWant) {
			t.Errorf("%q shows %q", got, tc.notWant)
		}
	}
}
