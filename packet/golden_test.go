package packet_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/fennec-mqtt/fennec/packet"
)

type vector struct {
	name string
	v    packet.Version
	b    []byte
}

// loadVectors reads testdata/mosquitto-2.0.11.txt ("<scenario> <dir> <hex>") and
// testdata/spec-examples.txt ("<label> <hex>").
func loadVectors(tb testing.TB) []vector {
	tb.Helper()
	var vs []vector
	for _, file := range []string{"testdata/mosquitto-2.0.11.txt", "testdata/spec-examples.txt"} {
		f, err := os.Open(file)
		if err != nil {
			tb.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for line := 1; sc.Scan(); line++ {
			text := strings.TrimSpace(sc.Text())
			if text == "" || text[0] == '#' {
				continue
			}
			fields := strings.Fields(text)
			b, err := hex.DecodeString(fields[len(fields)-1])
			if err != nil {
				tb.Fatalf("%s:%d: %v", file, line, err)
			}
			v := packet.V5
			if strings.HasPrefix(fields[0], "v311") {
				v = packet.V311
			}
			vs = append(vs, vector{name: file + ":" + strings.Join(fields[:len(fields)-1], " "), v: v, b: b})
		}
		f.Close()
	}
	if len(vs) < 90 {
		tb.Fatalf("only %d vectors", len(vs))
	}
	return vs
}

func TestGolden(t *testing.T) {
	seen := map[packet.Version]map[packet.Type]bool{packet.V311: {}, packet.V5: {}}
	for _, vec := range loadVectors(t) {
		p, err := packet.Unmarshal(vec.v, vec.b)
		if err != nil {
			t.Errorf("%s: decode % x: %v", vec.name, vec.b, err)
			continue
		}
		seen[vec.v][p.Type()] = true
		got, err := p.Append(nil, vec.v)
		if err != nil {
			t.Errorf("%s: re-encode: %v", vec.name, err)
			continue
		}
		if !bytes.Equal(got, vec.b) {
			t.Errorf("%s: re-encoded bytes differ\n got % x\nwant % x", vec.name, got, vec.b)
		}
	}
	for v, types := range seen {
		const want = 14 // every type but AUTH (absent from 3.1.1; mosquitto's clients do not send it)
		if len(types) < want {
			t.Errorf("%v: vectors cover %d packet types, want %d: %v", v, len(types), want, types)
		}
	}
}

// TestGoldenContent checks what some captured packets say, field by field.
func TestGoldenContent(t *testing.T) {
	get := func(v packet.Version, h string) packet.Packet {
		t.Helper()
		b, _ := hex.DecodeString(h)
		p, err := packet.Unmarshal(v, b)
		if err != nil {
			t.Fatalf("% x: %v", b, err)
		}
		return p
	}
	// mosquitto_pub -V 311 -i dev-42 -u alice -P s3cret -k 30 --will-topic dev/42/status
	// --will-payload offline --will-qos 1 --will-retain
	c := get(packet.V311, "103900044d51545404ee001e00066465762d3432000d6465762f34322f73746174757300076f66666c696e650005616c6963650006733363726574").(*packet.Connect)
	if c.Version != packet.V311 || c.ClientID != "dev-42" || c.KeepAlive != 30 || !c.CleanStart ||
		c.Username != "alice" || string(c.Password) != "s3cret" || c.Will == nil ||
		c.Will.Topic != "dev/42/status" || string(c.Will.Payload) != "offline" || c.Will.QoS != 1 || !c.Will.Retain {
		t.Errorf("CONNECT decoded as %+v will %+v", c, c.Will)
	}
	// mosquitto's MQTT 5 CONNACK: Topic Alias Maximum 10, Receive Maximum 20.
	ca := get(packet.V5, "200900000622000a210014").(*packet.Connack)
	if ca.ReasonCode != packet.Success || ca.Props.TopicAliasMaximum != 10 || ca.Props.ReceiveMaximum != 20 ||
		!ca.Props.Has(packet.PropReceiveMaximum) || ca.Props.Has(packet.PropMaximumQoS) {
		t.Errorf("CONNACK decoded as %+v", ca)
	}
	// Refused CONNACKs.
	if rc := get(packet.V311, "20020005").(*packet.Connack).ReasonCode; packet.ConnackReturnCodeString(rc) != "connection refused: not authorized" {
		t.Errorf("3.1.1 refused CONNACK: %v", rc)
	}
	if rc := get(packet.V5, "2003008700").(*packet.Connack).ReasonCode; rc != packet.NotAuthorized || !rc.IsError() {
		t.Errorf("5.0 refused CONNACK: %v", rc)
	}
	// Forwarded PUBLISH with Subscription Identifier 7, a user property and a content type.
	p := get(packet.V5, "32190003612f7800010e0b072600017500017603000263746f6e65").(*packet.Publish)
	if p.Topic != "a/x" || p.QoS != 1 || p.PacketID != 1 || string(p.Payload) != "one" ||
		len(p.Props.SubscriptionIdentifiers) != 1 || p.Props.SubscriptionIdentifiers[0] != 7 ||
		p.Props.ContentType != "ct" || len(p.Props.UserProperties) != 1 || p.Props.UserProperties[0] != (packet.UserProperty{Key: "u", Value: "v"}) {
		t.Errorf("PUBLISH decoded as %+v", p)
	}
	// UNSUBACK 0x11.
	if u := get(packet.V5, "b00400030011").(*packet.Unsuback); len(u.ReasonCodes) != 1 || u.ReasonCodes[0] != packet.NoSubscriptionExisted {
		t.Errorf("UNSUBACK decoded as %+v", u)
	}
}
