package broker_test

import (
	"net"
	"testing"

	"github.com/fennec-mqtt/fennec/broker/brokertest"
)

// connectBody builds a CONNECT body: protocol name, level, flags, keep alive 30, then rest
// (properties for level 5, client identifier, …), as given.
func connectBody(name string, level, flags byte, rest ...byte) []byte {
	b := appendString(nil, name)
	b = append(b, level, flags, 0, 30)
	return append(b, rest...)
}

// TestConnectConformance: CONNECT packets that break a rule mochi does not check get the answer
// the specification asks for, and the connection closes. Each case names its statement; each
// was accepted by the broker before (mochi answered or went on).
func TestConnectConformance(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	id := func(s string) []byte { return appendString(nil, s) }
	cases := []struct {
		name    string
		connect []byte
		connack []byte // the whole CONNACK expected; nil: closed without one
	}{
		{"MQTT 5 Session Expiry Interval given twice: 0x82 [MQTT-2.2.2-2]",
			encodePacket(0x10, connectBody("MQTT", 5, 0x02, append([]byte{10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2}, id("dup")...)...)),
			[]byte{0x20, 0x03, 0x00, 0x82, 0x00}},
		{"MQTT 5 will QoS 3: malformed, 0x81 [MQTT-3.1.2-12]",
			encodePacket(0x10, connectBody("MQTT", 5, 0x1e, append([]byte{0}, id("w3")...)...)),
			[]byte{0x20, 0x03, 0x00, 0x81, 0x00}},
		{"MQTT 5 Authentication Method the broker does not support: 0x8C [MQTT-4.12.0-1]",
			encodePacket(0x10, connectBody("MQTT", 5, 0x02, append(append([]byte{8, 0x15}, appendString(nil, "SCRAM")...), id("auth")...)...)),
			[]byte{0x20, 0x03, 0x00, 0x8c, 0x00}},
		{"protocol level 2: 3.1.1 CONNACK 0x01 [MQTT-3.1.2-2]",
			encodePacket(0x10, connectBody("MQTT", 2, 0x02, id("lvl2")...)),
			[]byte{0x20, 0x02, 0x00, 0x01}},
		{"3.1.1 reserved flag set: closed [MQTT-3.1.2-3]",
			encodePacket(0x10, connectBody("MQTT", 4, 0x03, id("rsv")...)),
			nil},
		{"3.1.1 password without user name: closed [MQTT-3.1.2-22]",
			encodePacket(0x10, connectBody("MQTT", 4, 0x42, append(id("pw"), appendString(nil, "secret")...)...)),
			nil},
		{"MQTT 3.1 empty client identifier: 0x02 (identifier rejected)",
			encodePacket(0x10, connectBody("MQIsdp", 3, 0x02, id("")...)),
			[]byte{0x20, 0x02, 0x00, 0x02}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", b.TCPAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.connect); err != nil {
				t.Fatal(err)
			}
			if tc.connack != nil {
				p, err := readPacket(c)
				if err != nil {
					t.Fatalf("no CONNACK: %v", err)
				}
				got := append([]byte{p.header, byte(len(p.body))}, p.body...)
				if string(got) != string(tc.connack) {
					t.Fatalf("CONNACK % x, want % x", got, tc.connack)
				}
			}
			expectClosed(t, c)
		})
	}
	// A valid MQTT 3.1 CONNECT still gets in.
	c, err := net.Dial("tcp", b.TCPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ack := connectRaw(t, c, encodePacket(0x10, connectBody("MQIsdp", 3, 0x02, id("old-client")...))); ack[3] != 0 {
		t.Fatalf("MQTT 3.1 CONNACK % x, want accepted", ack)
	}
}
