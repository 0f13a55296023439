package broker_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fennec-mqtt/fennec/packet"
)

// Hand-encoded MQTT packets, for the reason codes of MQTT 5 and for exact control over what a
// client sends. Each helper states the layout it encodes.

func appendString(b []byte, s string) []byte {
	return append(append(b, byte(len(s)>>8), byte(len(s))), s...)
}

func encodePacket(header byte, body []byte) []byte {
	return append(packet.AppendVarInt([]byte{header}, len(body)), body...)
}

// connect311: protocol name "MQTT", level 4, flags clean session, keepalive, client ID.
func connect311(id string, keepalive uint16) []byte {
	body := appendString(nil, "MQTT")
	body = append(body, 4, 0x02, byte(keepalive>>8), byte(keepalive))
	return encodePacket(0x10, appendString(body, id))
}

// connect5: level 5, clean start, keepalive, empty properties, client ID.
func connect5(id string, keepalive uint16) []byte {
	body := appendString(nil, "MQTT")
	body = append(body, 5, 0x02, byte(keepalive>>8), byte(keepalive), 0)
	return encodePacket(0x10, appendString(body, id))
}

// publish: topic, packet ID when qos > 0, properties length 0 for MQTT 5, payload.
func publish(v5 bool, topic string, qos byte, id uint16, payload []byte) []byte {
	body := appendString(nil, topic)
	if qos > 0 {
		body = append(body, byte(id>>8), byte(id))
	}
	if v5 {
		body = append(body, 0)
	}
	return encodePacket(0x30|qos<<1, append(body, payload...))
}

// subscribe: packet ID, properties length 0 for MQTT 5, one filter with its options byte (QoS).
func subscribe(v5 bool, id uint16, filter string, qos byte) []byte {
	body := []byte{byte(id >> 8), byte(id)}
	if v5 {
		body = append(body, 0)
	}
	body = append(appendString(body, filter), qos)
	return encodePacket(0x82, body)
}

type rawPacket struct {
	header byte
	body   []byte
}

func (p rawPacket) kind() byte { return p.header >> 4 }

// readPacket reads one packet, or returns the read error (io.EOF, a reset, a timeout).
func readPacket(c net.Conn) (rawPacket, error) {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(readerFunc(c.Read))
	h, err := r.ReadByte()
	if err != nil {
		return rawPacket{}, err
	}
	n, mul := 0, 1
	for {
		d, err := r.ReadByte()
		if err != nil {
			return rawPacket{}, err
		}
		n += int(d&0x7f) * mul
		mul *= 128
		if d&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return rawPacket{}, err
	}
	return rawPacket{h, body}, nil
}

// readerFunc keeps bufio from reading past one packet: it reads one byte at a time.
type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return f(p)
}

// connectRaw sends a CONNECT and returns the CONNACK bytes (header, length, flags, code).
func connectRaw(t *testing.T, c net.Conn, connect []byte) []byte {
	t.Helper()
	if _, err := c.Write(connect); err != nil {
		t.Fatal(err)
	}
	p, err := readPacket(c)
	if err != nil {
		t.Fatalf("reading CONNACK: %v", err)
	}
	if p.kind() != 2 {
		t.Fatalf("got packet type %d, want CONNACK", p.kind())
	}
	return append([]byte{p.header, byte(len(p.body))}, p.body...)
}

// expectClosed asserts that the peer closes the connection without sending another packet.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	p, err := readPacket(c)
	if err == nil {
		t.Fatalf("got packet type %d (% x), want the connection closed", p.kind(), p.body)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection still open")
	}
}

func dialWS(t *testing.T, addr string, cfg *tls.Config) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	scheme, client := "ws", http.DefaultClient
	if cfg != nil {
		scheme = "wss"
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	ws, _, err := websocket.Dial(ctx, scheme+"://"+addr+"/mqtt", &websocket.DialOptions{
		Subprotocols: []string{"mqtt"}, HTTPClient: client})
	if err != nil {
		t.Fatalf("websocket dial %s: %v", addr, err)
	}
	nc := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	if cfg != nil {
		t.Cleanup(client.CloseIdleConnections)
	}
	return nc
}

func dialTLS(t *testing.T, addr string, cfg *tls.Config) net.Conn {
	t.Helper()
	d := tls.Dialer{Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// props parses MQTT 5 properties into a map from identifier to value (uint32 for integers,
// string for strings; user properties are skipped).
func props(b []byte) (map[byte]any, []byte) {
	n, mul, i := 0, 1, 0
	for {
		d := b[i]
		i++
		n += int(d&0x7f) * mul
		mul *= 128
		if d&0x80 == 0 {
			break
		}
	}
	p, rest := b[i:i+n], b[i+n:]
	out := map[byte]any{}
	str := func() string { l := int(p[0])<<8 | int(p[1]); s := string(p[2 : 2+l]); p = p[2+l:]; return s }
	for len(p) > 0 {
		id := p[0]
		p = p[1:]
		switch id {
		case 0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A:
			out[id] = uint32(p[0])
			p = p[1:]
		case 0x13, 0x21, 0x22, 0x23:
			out[id] = uint32(p[0])<<8 | uint32(p[1])
			p = p[2:]
		case 0x02, 0x11, 0x18, 0x27:
			out[id] = uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])
			p = p[4:]
		case 0x26:
			str()
			str()
		default: // strings and binary data
			out[id] = str()
		}
	}
	return out, rest
}

// ackCode returns the reason code of an MQTT 5 PUBACK (0 when omitted: MQTT 5.0 section 3.4.2.1).
func ackCode(p rawPacket) byte {
	if len(p.body) < 3 {
		return 0
	}
	return p.body[2]
}

// subackCodes returns the reason codes of a SUBACK (after the MQTT 5 properties when v5).
func subackCodes(v5 bool, p rawPacket) []byte {
	if !v5 {
		return p.body[2:]
	}
	_, rest := props(p.body[2:])
	return rest
}
