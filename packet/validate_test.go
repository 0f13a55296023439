package packet_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/fennec-mqtt/fennec/packet"
)

const (
	v3 = packet.V311
	v5 = packet.V5
)

// checkRule asserts err is a *packet.Error matching sentinel and naming rule ("" = any rule).
func checkRule(t *testing.T, name string, err error, sentinel error, rule string) {
	t.Helper()
	var pe *packet.Error
	if !errors.As(err, &pe) {
		t.Errorf("%s: err = %v, want *packet.Error", name, err)
		return
	}
	if !errors.Is(err, sentinel) {
		t.Errorf("%s: err = %v (reason %v), want errors.Is %v", name, err, pe.Reason, sentinel)
	}
	if rule != "" && pe.Rule != rule {
		t.Errorf("%s: rule = %q, want %q (%v)", name, pe.Rule, rule, err)
	}
	if !strings.HasPrefix(err.Error(), "packet: ") {
		t.Errorf("%s: message %q lacks the package prefix", name, err)
	}
}

var (
	mal   = packet.ErrMalformed
	proto = packet.ErrProtocol
	unsup = packet.ErrUnsupportedVersion
)

// A body with strings spelled out: s("a/b") is the length-prefixed string.
func s(x string) string {
	return hex.EncodeToString(append([]byte{byte(len(x) >> 8), byte(len(x))}, x...))
}

func TestDecodeRejects(t *testing.T) {
	connect := func(level, flags string, rest string) string {
		return s("MQTT") + level + flags + "003c" + rest
	}
	tests := []struct {
		name     string
		v        packet.Version
		header   byte
		body     string
		sentinel error
		rule     string
	}{
		// Fixed header flags.
		{"reserved flags PUBACK", v3, 0x41, "0001", mal, "[MQTT-2.2.2-1]"},
		{"reserved flags PUBACK v5", v5, 0x48, "0001", mal, "[MQTT-2.1.3-1]"},
		{"reserved flags CONNACK", v3, 0x21, "0000", mal, "[MQTT-2.2.2-1]"},
		{"reserved flags PINGREQ", v5, 0xC1, "", mal, "[MQTT-2.1.3-1]"},
		{"PUBREL flags", v3, 0x60, "0001", mal, "[MQTT-3.6.1-1]"},
		{"SUBSCRIBE flags", v5, 0x80, "000a00" + s("a") + "00", mal, "[MQTT-3.8.1-1]"},
		{"UNSUBSCRIBE flags", v3, 0xA3, "000a" + s("a"), mal, "[MQTT-3.10.1-1]"},
		{"reserved type 0", v3, 0x00, "", mal, ""},
		{"AUTH in 3.1.1", v3, 0xF0, "", mal, ""},
		// PUBLISH.
		{"QoS 3", v3, 0x36, s("a/b") + "0001", mal, "[MQTT-3.3.1-4]"},
		{"QoS 3 v5", v5, 0x37, s("a/b") + "000100", mal, "[MQTT-3.3.1-4]"},
		{"DUP with QoS 0", v3, 0x38, s("a/b"), mal, "[MQTT-3.3.1-2]"},
		{"PUBLISH packet id 0", v3, 0x32, s("a/b") + "0000", proto, "[MQTT-2.3.1-1]"},
		{"PUBLISH packet id 0 v5", v5, 0x34, s("a/b") + "000000", proto, "[MQTT-2.2.1-3]"},
		{"topic with wildcard", v3, 0x30, s("a/#"), mal, "[MQTT-3.3.2-2]"},
		{"topic with +", v5, 0x30, s("+") + "00", mal, "[MQTT-3.3.2-2]"},
		{"empty topic 3.1.1", v3, 0x30, s("") + "6869", mal, "[MQTT-4.7.3-1]"},
		{"empty topic without alias", v5, 0x30, s("") + "00", proto, ""},
		{"topic ill-formed UTF-8", v3, 0x30, "0003" + "61ff62", mal, "[MQTT-1.5.3-1]"},
		{"topic surrogate", v3, 0x30, "0003" + "eda080", mal, "[MQTT-1.5.3-1]"},
		{"topic overlong", v5, 0x30, "0002" + "c0af" + "00", mal, "[MQTT-1.5.4-1]"},
		{"topic U+0000", v3, 0x30, "0003" + "610062", mal, "[MQTT-1.5.3-2]"},
		{"topic U+0000 v5", v5, 0x30, "0003" + "610062" + "00", mal, "[MQTT-1.5.4-2]"},
		{"topic U+0000 after non-ASCII", v5, 0x30, "0004" + "c3a40062" + "00", mal, "[MQTT-1.5.4-2]"},
		{"topic runs past end", v3, 0x30, "0005" + "61", mal, ""},
		{"v5 PUBLISH without property length", v5, 0x30, s("a"), mal, ""},
		{"topic alias 0", v5, 0x30, s("a") + "03230000", proto, "[MQTT-3.3.2-8]"},
		{"property not allowed in PUBLISH", v5, 0x30, s("a") + "051100000001", proto, ""},
		{"duplicate property", v5, 0x30, s("a") + "08" + "03" + s("x") + "03" + s("y"), proto, ""},
		{"duplicate Message Expiry", v5, 0x30, s("a") + "0a" + "0200000001" + "0200000002", proto, ""},
		{"unknown property", v5, 0x30, s("a") + "020500", mal, ""},
		{"property length past end", v5, 0x30, s("a") + "09" + "0101", mal, ""},
		{"property length non-minimal", v5, 0x30, s("a") + "8000", mal, "[MQTT-1.5.5-1]"},
		{"payload format 2", v5, 0x30, s("a") + "020102", proto, ""},
		{"subscription identifier 0", v5, 0x30, s("a") + "020b00", proto, ""},
		{"Response Topic with wildcard", v5, 0x30, s("a") + "04" + "08" + s("#"), mal, "[MQTT-3.3.2-2]"},
		{"user property bad UTF-8", v5, 0x30, s("a") + "07" + "26" + "0001ff" + s("v"), mal, "[MQTT-1.5.4-1]"},
		// Acknowledgements.
		{"PUBACK packet id 0", v3, 0x40, "0000", proto, "[MQTT-2.3.1-1]"},
		{"PUBCOMP packet id 0 v5", v5, 0x70, "0000", proto, "[MQTT-2.2.1-3]"},
		{"PUBACK too long 3.1.1", v3, 0x40, "000100", mal, ""},
		{"PUBACK too short", v5, 0x40, "00", mal, ""},
		{"PUBACK reason not allowed", v5, 0x40, "000181", proto, ""},
		{"PUBREL reason not allowed", v5, 0x62, "000110", proto, ""},
		{"PUBACK property not allowed", v5, 0x40, "00010003" + "2a01" + "00", proto, ""},
		{"PUBACK duplicate reason string", v5, 0x40, "00010008" + "1f" + s("a") + "1f" + s("b"), proto, ""},
		// CONNECT.
		{"protocol name", v3, 0x10, s("MQIsdp") + "03" + "02003c" + s("c"), unsup, "[MQTT-3.1.2-1]"},
		{"protocol level 6", v3, 0x10, connect("06", "02", s("c")), unsup, "[MQTT-3.1.2-2]"},
		{"CONNECT reserved flag", v3, 0x10, connect("04", "03", s("c")), mal, "[MQTT-3.1.2-3]"},
		{"will QoS without will", v3, 0x10, connect("04", "0a", s("c")), mal, "[MQTT-3.1.2-13]"},
		{"will QoS without will v5", v5, 0x10, connect("05", "0a", "00"+s("c")), mal, "[MQTT-3.1.2-11]"},
		{"will QoS 3", v3, 0x10, connect("04", "1e", s("c")+s("w")+s("m")), mal, "[MQTT-3.1.2-14]"},
		{"will QoS 3 v5", v5, 0x10, connect("05", "1e", "00"+s("c")+"00"+s("w")+s("m")), mal, "[MQTT-3.1.2-12]"},
		{"will retain without will", v3, 0x10, connect("04", "22", s("c")), mal, "[MQTT-3.1.2-15]"},
		{"will retain without will v5", v5, 0x10, connect("05", "22", "00"+s("c")), mal, "[MQTT-3.1.2-13]"},
		{"password without user name", v3, 0x10, connect("04", "42", s("c")+s("p")), mal, "[MQTT-3.1.2-22]"},
		{"will flag without will fields", v3, 0x10, connect("04", "06", s("c")), mal, ""},
		{"user name flag without user name", v3, 0x10, connect("04", "82", s("c")), mal, ""},
		{"CONNECT trailing bytes", v3, 0x10, connect("04", "02", s("c")+"00"), mal, ""},
		{"will topic wildcard", v3, 0x10, connect("04", "06", s("c")+s("w/+")+s("m")), mal, "[MQTT-3.3.2-2]"},
		{"client id U+0000", v3, 0x10, connect("04", "02", "0001"+"00"), mal, "[MQTT-1.5.3-2]"},
		{"receive maximum 0", v5, 0x10, connect("05", "02", "03210000"+s("c")), proto, ""},
		{"maximum packet size 0", v5, 0x10, connect("05", "02", "052700000000"+s("c")), proto, ""},
		{"CONNACK-only property in CONNECT", v5, 0x10, connect("05", "02", "022401"+s("c")), proto, ""},
		{"will delay in CONNECT properties", v5, 0x10, connect("05", "02", "051800000001"+s("c")), proto, ""},
		{"session expiry in will properties", v5, 0x10, connect("05", "06", "00"+s("c")+"051100000001"+s("w")+s("m")), proto, ""},
		{"duplicate session expiry", v5, 0x10, connect("05", "02", "0a"+"1100000001"+"1100000002"+s("c")), proto, ""},
		{"request problem information 2", v5, 0x10, connect("05", "02", "021702"+s("c")), proto, ""},
		// CONNACK.
		{"CONNACK reserved flags", v3, 0x20, "0200", mal, "[MQTT-3.2.2-1]"},
		{"session present with error", v3, 0x20, "0105", proto, "[MQTT-3.2.2-4]"},
		{"session present with error v5", v5, 0x20, "018700", proto, "[MQTT-3.2.2-6]"},
		{"return code 6", v3, 0x20, "0006", proto, ""},
		{"CONNACK reason not allowed", v5, 0x20, "000400", proto, ""},
		{"CONNACK too long 3.1.1", v3, 0x20, "000000", mal, ""},
		{"maximum QoS 2", v5, 0x20, "0000022402", proto, ""},
		{"topic alias in CONNACK", v5, 0x20, "000003230001", proto, ""},
		// SUBSCRIBE.
		{"SUBSCRIBE packet id 0", v3, 0x82, "0000" + s("a") + "00", proto, "[MQTT-2.3.1-1]"},
		{"SUBSCRIBE no filter", v3, 0x82, "000a", proto, "[MQTT-3.8.3-3]"},
		{"SUBSCRIBE no filter v5", v5, 0x82, "000a00", proto, "[MQTT-3.8.3-2]"},
		{"SUBSCRIBE reserved option bits", v3, 0x82, "000a" + s("a") + "04", mal, "[MQTT-3.8.3-4]"},
		{"SUBSCRIBE requested QoS 3", v3, 0x82, "000a" + s("a") + "03", mal, "[MQTT-3.8.3-4]"},
		{"SUBSCRIBE reserved option bits v5", v5, 0x82, "000a00" + s("a") + "40", mal, "[MQTT-3.8.3-5]"},
		{"SUBSCRIBE QoS 3 v5", v5, 0x82, "000a00" + s("a") + "03", mal, "[MQTT-3.8.3-5]"},
		{"retain handling 3", v5, 0x82, "000a00" + s("a") + "30", proto, ""},
		{"no local on shared subscription", v5, 0x82, "000a00" + s("$share/g/a") + "04", proto, "[MQTT-3.8.3-4]"},
		{"shared subscription without filter", v5, 0x82, "000a00" + s("$share/g") + "00", proto, "[MQTT-4.8.2-2]"},
		{"shared subscription wildcard share name", v5, 0x82, "000a00" + s("$share/+/a") + "00", proto, "[MQTT-4.8.2-1]"},
		{"filter # not last", v3, 0x82, "000a" + s("a/#/b") + "00", mal, "[MQTT-4.7.1-2]"},
		{"filter # not whole level", v5, 0x82, "000a00" + s("a#") + "00", mal, "[MQTT-4.7.1-1]"},
		{"filter + not whole level", v3, 0x82, "000a" + s("a+") + "00", mal, "[MQTT-4.7.1-3]"},
		{"empty filter", v3, 0x82, "000a" + s("") + "00", mal, "[MQTT-4.7.3-1]"},
		{"filter without options byte", v3, 0x82, "000a" + s("a"), mal, ""},
		{"two subscription identifiers", v5, 0x82, "000a04" + "0b010b02" + s("a") + "00", proto, ""},
		{"topic alias in SUBSCRIBE", v5, 0x82, "000a03230001" + s("a") + "00", proto, ""},
		// SUBACK, UNSUBSCRIBE, UNSUBACK.
		{"SUBACK return code 3", v3, 0x90, "000a03", proto, "[MQTT-3.9.3-2]"},
		{"SUBACK no return code", v3, 0x90, "000a", proto, ""},
		{"SUBACK reason not allowed", v5, 0x90, "000a0010", proto, ""},
		{"UNSUBSCRIBE no filter", v3, 0xA2, "000a", proto, "[MQTT-3.10.3-2]"},
		{"UNSUBSCRIBE no filter v5", v5, 0xA2, "000a00", proto, "[MQTT-3.10.3-2]"},
		{"UNSUBSCRIBE packet id 0", v3, 0xA2, "0000" + s("a"), proto, "[MQTT-2.3.1-1]"},
		{"UNSUBSCRIBE bad filter", v3, 0xA2, "000a" + s("a/#/"), mal, "[MQTT-4.7.1-2]"},
		{"UNSUBACK 3.1.1 too long", v3, 0xB0, "000a00", mal, ""},
		{"UNSUBACK no reason code", v5, 0xB0, "000a00", proto, ""},
		{"UNSUBACK reason not allowed", v5, 0xB0, "000a0001", proto, ""},
		// PING, DISCONNECT, AUTH.
		{"PINGREQ with body", v3, 0xC0, "00", mal, ""},
		{"PINGRESP with body", v5, 0xD0, "00", mal, ""},
		{"DISCONNECT 3.1.1 with body", v3, 0xE0, "00", mal, ""},
		{"DISCONNECT reason not allowed", v5, 0xE0, "01", proto, ""},
		{"DISCONNECT session expiry twice", v5, 0xE0, "000a" + "1100000001" + "1100000001", proto, ""},
		{"DISCONNECT property not allowed", v5, 0xE0, "0003" + "210001", proto, ""},
		{"AUTH reason not allowed", v5, 0xF0, "80", proto, ""},
		{"AUTH trailing bytes", v5, 0xF0, "180000", mal, ""},
	}
	for _, tt := range tests {
		body, err := hex.DecodeString(tt.body)
		if err != nil {
			t.Fatalf("%s: bad hex: %v", tt.name, err)
		}
		p, err := packet.Decode(tt.v, tt.header, body)
		if err == nil {
			t.Errorf("%s: decoded %+v, want an error", tt.name, p)
			continue
		}
		checkRule(t, tt.name, err, tt.sentinel, tt.rule)
	}
}

func TestVariableByteInteger(t *testing.T) {
	// The boundary values of MQTT 3.1.1 table 2.4 / MQTT 5.0 section 1.5.5, as remaining lengths.
	for _, tt := range []struct {
		enc string
		n   int
	}{
		{"00", 0}, {"7f", 127}, {"8001", 128}, {"ff7f", 16383}, {"808001", 16384},
		{"ffff7f", 2097151}, {"80808001", 2097152}, {"ffffff7f", 268435455},
	} {
		enc, _ := hex.DecodeString(tt.enc)
		// A PUBLISH header with this remaining length, followed by too little data: Split must
		// report the length it read, not trust it.
		b := append([]byte{0x30}, enc...)
		_, _, _, err := packet.Split(b)
		if tt.n == 0 {
			if err != nil {
				t.Errorf("%s: %v", tt.enc, err)
			}
			continue
		}
		if !errors.Is(err, packet.ErrMalformed) || !strings.Contains(err.Error(), "remaining length "+itoa(tt.n)+" ") {
			t.Errorf("%s: err = %v, want remaining length %d", tt.enc, err, tt.n)
		}
	}
	for _, tt := range []struct{ name, enc, rule string }{
		{"five bytes", "ffffffff7f", "[MQTT-1.5.5-1]"},
		{"non-minimal 0", "8000", "[MQTT-1.5.5-1]"},
		{"non-minimal 127", "ff00", "[MQTT-1.5.5-1]"},
		{"non-minimal 128", "808100", "[MQTT-1.5.5-1]"},
	} {
		enc, _ := hex.DecodeString(tt.enc)
		_, _, _, err := packet.Split(append([]byte{0xC0}, enc...))
		checkRule(t, "Split "+tt.name, err, mal, tt.rule)
		_, err = packet.NewReader(bytes.NewReader(append([]byte{0xC0}, enc...)), 0).ReadPacket(v5)
		checkRule(t, "Reader "+tt.name, err, mal, tt.rule)
	}
}

func itoa(n int) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}

func TestEncodeRejects(t *testing.T) {
	withProps := func(f func(p *packet.Properties)) packet.Properties {
		var p packet.Properties
		f(&p)
		return p
	}
	tests := []struct {
		name     string
		v        packet.Version
		p        packet.Packet
		sentinel error
		rule     string
	}{
		{"QoS 3", v3, &packet.Publish{Topic: "a", QoS: 3, PacketID: 1}, mal, "[MQTT-3.3.1-4]"},
		{"DUP with QoS 0", v5, &packet.Publish{Topic: "a", Dup: true}, mal, "[MQTT-3.3.1-2]"},
		{"PUBLISH packet id 0", v3, &packet.Publish{Topic: "a", QoS: 1}, proto, "[MQTT-2.3.1-1]"},
		{"PUBLISH packet id 0 v5", v5, &packet.Publish{Topic: "a", QoS: 2}, proto, "[MQTT-2.2.1-3]"},
		{"topic wildcard", v3, &packet.Publish{Topic: "a/+"}, mal, "[MQTT-3.3.2-2]"},
		{"topic bad UTF-8", v5, &packet.Publish{Topic: "a\xff"}, mal, "[MQTT-1.5.4-1]"},
		{"topic surrogate", v3, &packet.Publish{Topic: "\xed\xbf\xbf"}, mal, "[MQTT-1.5.3-1]"},
		{"topic NUL", v3, &packet.Publish{Topic: "a\x00"}, mal, "[MQTT-1.5.3-2]"},
		{"topic too long", v3, &packet.Publish{Topic: strings.Repeat("a", 65536)}, mal, ""},
		{"empty topic 3.1.1", v3, &packet.Publish{}, mal, "[MQTT-4.7.3-1]"},
		{"empty topic without alias", v5, &packet.Publish{}, proto, ""},
		{"topic alias 0", v5, &packet.Publish{Topic: "a", Props: withProps(func(p *packet.Properties) { p.SetTopicAlias(0) })}, proto, "[MQTT-3.3.2-8]"},
		{"session expiry on PUBLISH", v5, &packet.Publish{Topic: "a", Props: withProps(func(p *packet.Properties) { p.SetSessionExpiryInterval(1) })}, proto, ""},
		{"user property NUL", v5, &packet.Publish{Topic: "a", Props: withProps(func(p *packet.Properties) { p.AddUserProperty("k\x00", "v") })}, mal, "[MQTT-1.5.4-2]"},
		{"correlation data too long", v5, &packet.Publish{Topic: "a", Props: withProps(func(p *packet.Properties) { p.SetCorrelationData(make([]byte, 65536)) })}, mal, ""},
		{"payload format 2", v5, &packet.Publish{Topic: "a", Props: withProps(func(p *packet.Properties) { p.SetPayloadFormat(2) })}, proto, ""},
		{"subscription identifier 0", v5, &packet.Publish{Topic: "a", Props: packet.Properties{SubscriptionIdentifiers: []uint32{0}}}, proto, ""},
		{"password without user name", v3, &packet.Connect{CleanStart: true, ClientID: "c", Password: []byte("p")}, proto, "[MQTT-3.1.2-22]"},
		{"empty client id without clean session", v3, &packet.Connect{}, proto, "[MQTT-3.1.3-7]"},
		{"protocol name", v3, &packet.Connect{ProtocolName: "MQIsdp", CleanStart: true}, proto, "[MQTT-3.1.2-1]"},
		{"version mismatch", v5, &packet.Connect{Version: v3, CleanStart: true}, proto, ""},
		{"will QoS 3", v5, &packet.Connect{CleanStart: true, Will: &packet.Will{Topic: "w", QoS: 3}}, mal, "[MQTT-3.1.2-12]"},
		{"will topic wildcard", v3, &packet.Connect{CleanStart: true, Will: &packet.Will{Topic: "w/#"}}, mal, "[MQTT-3.3.2-2]"},
		{"will topic empty", v3, &packet.Connect{CleanStart: true, Will: &packet.Will{}}, mal, "[MQTT-4.7.3-1]"},
		{"will delay in CONNECT", v5, &packet.Connect{CleanStart: true, Props: withProps(func(p *packet.Properties) { p.SetWillDelayInterval(1) })}, proto, ""},
		{"receive maximum 0", v5, &packet.Connect{CleanStart: true, Props: withProps(func(p *packet.Properties) { p.SetReceiveMaximum(0) })}, proto, ""},
		{"session expiry in will", v5, &packet.Connect{CleanStart: true, Will: &packet.Will{Topic: "w", Props: withProps(func(p *packet.Properties) { p.SetSessionExpiryInterval(1) })}}, proto, ""},
		{"session present with error", v3, &packet.Connack{SessionPresent: true, ReasonCode: 5}, proto, "[MQTT-3.2.2-4]"},
		{"return code 6", v3, &packet.Connack{ReasonCode: 6}, proto, ""},
		{"CONNACK reason not allowed", v5, &packet.Connack{ReasonCode: packet.NoMatchingSubscribers}, proto, ""},
		{"topic alias maximum in PUBACK", v5, &packet.Puback{PacketID: 1, Props: withProps(func(p *packet.Properties) { p.SetTopicAliasMaximum(1) })}, proto, ""},
		{"PUBACK packet id 0", v5, &packet.Puback{}, proto, "[MQTT-2.2.1-3]"},
		{"PUBACK reason in 3.1.1", v3, &packet.Puback{PacketID: 1, ReasonCode: packet.QuotaExceeded}, proto, ""},
		{"PUBREC reason not allowed", v5, &packet.Pubrec{PacketID: 1, ReasonCode: packet.MalformedPacket}, proto, ""},
		{"PUBCOMP reason not allowed", v5, &packet.Pubcomp{PacketID: 1, ReasonCode: packet.NotAuthorized}, proto, ""},
		{"SUBSCRIBE no filter", v3, &packet.Subscribe{PacketID: 1}, proto, "[MQTT-3.8.3-3]"},
		{"SUBSCRIBE packet id 0", v3, &packet.Subscribe{Subscriptions: []packet.Subscription{{Filter: "a"}}}, proto, "[MQTT-2.3.1-1]"},
		{"SUBSCRIBE bad filter", v5, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a/#/b"}}}, mal, "[MQTT-4.7.1-1]"},
		{"SUBSCRIBE QoS 3", v3, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a", QoS: 3}}}, mal, "[MQTT-3.8.3-4]"},
		{"No Local in 3.1.1", v3, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a", NoLocal: true}}}, proto, ""},
		{"No Local on shared", v5, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "$share/g/a", NoLocal: true}}}, proto, "[MQTT-3.8.3-4]"},
		{"retain handling 3", v5, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a", RetainHandling: 3}}}, proto, ""},
		{"two subscription identifiers", v5, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a"}}, Props: packet.Properties{SubscriptionIdentifiers: []uint32{1, 2}}}, proto, ""},
		{"SUBACK return code 3", v3, &packet.Suback{PacketID: 1, ReasonCodes: []packet.ReasonCode{3}}, proto, "[MQTT-3.9.3-2]"},
		{"SUBACK empty", v5, &packet.Suback{PacketID: 1}, proto, ""},
		{"UNSUBSCRIBE no filter", v5, &packet.Unsubscribe{PacketID: 1}, proto, "[MQTT-3.10.3-2]"},
		{"UNSUBACK codes in 3.1.1", v3, &packet.Unsuback{PacketID: 1, ReasonCodes: []packet.ReasonCode{0}}, proto, ""},
		{"UNSUBACK no code v5", v5, &packet.Unsuback{PacketID: 1}, proto, ""},
		{"DISCONNECT reason in 3.1.1", v3, &packet.Disconnect{ReasonCode: packet.ServerBusy}, proto, ""},
		{"DISCONNECT reason not allowed", v5, &packet.Disconnect{ReasonCode: packet.GrantedQoS1}, proto, ""},
		{"AUTH in 3.1.1", v3, &packet.Auth{}, proto, ""},
		{"AUTH reason not allowed", v5, &packet.Auth{ReasonCode: packet.NotAuthorized}, proto, ""},
		{"unknown version", packet.Version(3), &packet.Pingreq{}, unsup, ""},
	}
	for _, tt := range tests {
		dst := []byte("keep")
		b, err := tt.p.Append(dst, tt.v)
		if err == nil {
			t.Errorf("%s: encoded % x, want an error", tt.name, b)
			continue
		}
		if string(b) != "keep" {
			t.Errorf("%s: dst changed to %q on error", tt.name, b)
		}
		checkRule(t, tt.name, err, tt.sentinel, tt.rule)
	}
}

func TestErrorMessage(t *testing.T) {
	_, err := (&packet.Publish{Topic: "a", QoS: 3}).Append(nil, v5)
	if got, want := err.Error(), "packet: PUBLISH: QoS 3 is not allowed [MQTT-3.3.1-4]"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if errors.Is(err, packet.ErrProtocol) || errors.Is(err, packet.ErrPacketTooLarge) {
		t.Errorf("%v matches more than one sentinel", err)
	}
}

func TestReasonCode(t *testing.T) {
	if s := packet.NotAuthorized.String(); s != "Not authorized" {
		t.Errorf("NotAuthorized.String() = %q", s)
	}
	if packet.NoMatchingSubscribers.IsError() || !packet.UnspecifiedError.IsError() {
		t.Error("IsError boundary wrong")
	}
	if s := packet.ReasonCode(0x03).String(); s != "ReasonCode(0x3)" {
		t.Errorf("unknown code String() = %q", s)
	}
	if s := packet.ConnackReturnCodeString(packet.ConnRefusedBadUserNameOrPasswd); s != "connection refused: bad user name or password" {
		t.Errorf("3.1.1 return code 4 = %q", s)
	}
	if packet.V311.String() != "3.1.1" || packet.V5.String() != "5.0" || packet.PUBLISH.String() != "PUBLISH" {
		t.Error("String methods")
	}
}
