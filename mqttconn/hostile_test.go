package mqttconn_test

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/mqttconn"
	"github.com/fennec-mqtt/fennec/packet"
)

// hostileBroker answers CONNECT with the given CONNACK bytes, then writes after, then holds the
// connection until the test ends.
func hostileBroker(t *testing.T, v packet.Version, connack, after []byte) *mqttconn.Options {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer nc.Close()
		if _, err := packet.NewReader(nc, 0).ReadPacket(v); err != nil {
			return
		}
		nc.Write(connack)
		nc.Write(after)
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.Copy(io.Discard, nc)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return &mqttconn.Options{Scheme: "mqtt", Addr: ln.Addr().String(),
		Connect: packet.Connect{Version: v, ClientID: "hostile", CleanStart: true, KeepAlive: 30}}
}

func connackBytes(v packet.Version) []byte {
	b, _ := (&packet.Connack{}).Append(nil, v)
	return b
}

// TestClaimedLengthCostsNothing: a PUBLISH that claims 256 MiB and sends ten bytes costs the
// client about what it received, not what it claimed. The reader used to allocate the claimed
// length before the bytes arrived (256 MiB for the five bytes 30 FF FF FF 7F).
func TestClaimedLengthCostsNothing(t *testing.T) {
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			hostile := append([]byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F}, make([]byte, 10)...)
			o := hostileBroker(t, v, connackBytes(v), hostile)
			o.MaxPacketSize = packet.MaxPacketSize // the protocol maximum: only memory policy protects
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			c, _, err := mqttconn.Dial(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			res := make(chan error, 1)
			go func() { res <- c.Run() }()
			time.Sleep(200 * time.Millisecond) // the reader waits for the rest of the body
			runtime.ReadMemStats(&after)
			c.Close(nil)
			<-res
			if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
				t.Fatalf("a packet that claims 256 MiB and sends 10 bytes cost %d bytes", got)
			}
		})
	}
}

// TestAckLengthCapped: an acknowledgement, CONNACK or PINGRESP that claims more than its type can
// hold is refused as malformed at once, without waiting for (or allocating) the claimed body.
func TestAckLengthCapped(t *testing.T) {
	cases := []struct {
		name    string
		v       packet.Version
		connack []byte
		after   []byte
		phase   bool // the error comes from Dial (CONNACK)
	}{
		{"connack-311", packet.V311, []byte{0x20, 0xFF, 0xFF, 0x7F}, nil, true},
		{"connack-5", packet.V5, []byte{0x20, 0xFF, 0xFF, 0x7F}, nil, true},
		{"puback-311", packet.V311, connackBytes(packet.V311), []byte{0x40, 0x03, 0, 1, 0}, false},
		{"puback-5", packet.V5, connackBytes(packet.V5), []byte{0x40, 0xFF, 0xFF, 0x7F}, false},
		{"pingresp", packet.V5, connackBytes(packet.V5), []byte{0xD0, 0x10}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := hostileBroker(t, tc.v, tc.connack, tc.after)
			o.MaxPacketSize = packet.MaxPacketSize
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, _, err := mqttconn.Dial(ctx, o)
			if tc.phase {
				var pe *packet.Error
				if !errors.As(err, &pe) || pe.Reason != packet.MalformedPacket {
					t.Fatalf("Dial: %v, want a malformed CONNACK", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			res := make(chan error, 1)
			go func() { res <- c.Run() }()
			select {
			case err = <-res:
			case <-ctx.Done():
				c.Close(nil)
				t.Fatal("the oversized acknowledgement was not refused: the reader waits for its body")
			}
			var pe *packet.Error
			if !errors.As(err, &pe) || pe.Reason != packet.MalformedPacket {
				t.Fatalf("Run: %v, want a malformed-packet error", err)
			}
		})
	}
}

// TestDefaultMaxPacketSize: without a configured maximum, a packet above 1 MiB from an MQTT 5
// broker (which was told the limit) is refused before its body is read.
func TestDefaultMaxPacketSize(t *testing.T) {
	big := packet.AppendVarInt([]byte{0x30}, packet.DefaultMaxPacketSize)
	o := hostileBroker(t, packet.V5, connackBytes(packet.V5), big)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := mqttconn.Dial(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() { res <- c.Run() }()
	select {
	case err = <-res:
	case <-ctx.Done():
		c.Close(nil)
		t.Fatal("a packet above the default maximum was not refused")
	}
	if !errors.Is(err, packet.ErrPacketTooLarge) {
		t.Fatalf("Run: %v, want ErrPacketTooLarge", err)
	}
}

// TestOversizePublish311: an MQTT 3.1.1 broker cannot be told the maximum, so a PUBLISH above
// it is skipped as it arrives and handed on as a *packet.OversizePublish (the client
// acknowledges and counts it); the connection goes on and the next packet arrives.
func TestOversizePublish311(t *testing.T) {
	big, _ := (&packet.Publish{Topic: "big", QoS: 1, PacketID: 9, Payload: make([]byte, packet.DefaultMaxPacketSize)}).Append(nil, packet.V311)
	next, _ := (&packet.Publish{Topic: "next", QoS: 1, PacketID: 10, Payload: []byte("n")}).Append(nil, packet.V311)
	o := hostileBroker(t, packet.V311, connackBytes(packet.V311), append(big, next...))
	got := make(chan packet.Packet, 2)
	o.OnPacket = func(_ *mqttconn.Conn, p packet.Packet) {
		if pub, ok := p.(*packet.Publish); ok {
			cp := *pub
			p = &cp
		}
		got <- p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := mqttconn.Dial(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(nil)
	go c.Run()
	for i, want := range []string{"skipped PUBLISH 9", "PUBLISH next"} {
		select {
		case p := <-got:
			switch p := p.(type) {
			case *packet.OversizePublish:
				if i != 0 || p.PacketID != 9 || p.QoS != 1 || p.Size != len(big) {
					t.Fatalf("packet %d: %+v, want %s", i, p, want)
				}
			case *packet.Publish:
				if i != 1 || p.Topic != "next" {
					t.Fatalf("packet %d: %+v, want %s", i, p, want)
				}
			default:
				t.Fatalf("packet %d: %T, want %s", i, p, want)
			}
		case <-ctx.Done():
			t.Fatalf("no %s (%v)", want, c.Err())
		}
	}
}

// A broker without MQTT 5 answers an MQTT 5 CONNECT with a 3.1.1 CONNACK, return code 1. It
// read as "protocol violation: reason code Granted QoS 1 is not allowed in CONNACK"; it is the
// refusal of the protocol version.
func TestConnack311ToMQTT5(t *testing.T) {
	o := hostileBroker(t, packet.V5, []byte{0x20, 0x02, 0x00, 0x01}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := mqttconn.Dial(ctx, o)
	var re *mqttconn.ReasonError
	if !errors.As(err, &re) || re.Packet != packet.CONNACK || re.Code != 1 || re.Version != packet.V311 || !strings.Contains(re.Reason, "does not speak MQTT 5") {
		t.Fatalf("Dial: %v, want the 3.1.1 refusal of the protocol version", err)
	}
}
