package benchmarks

// Codec benchmarks: Fennec's packet codec beside paho.golang/packets (MQTT 5 only) and
// paho.mqtt.golang/packets (MQTT 3.1.1 only), on the same inputs. Run them with
//
//	go test -run '^$' -bench 'Codec' -count 6 . | tee codec.txt
//	go run golang.org/x/perf/cmd/benchstat@latest -col /lib codec.txt
//
// Names are BenchmarkCodec/<packet>/<op>/lib=<library>; op "encode" writes into a reused buffer,
// "decode" decodes one whole packet held in memory, "read" reads it from an io.Reader (the
// library owns a copy of the payload afterwards), "encode+decode" does both.

import (
	"bytes"
	"fmt"
	"testing"

	paho5 "github.com/eclipse/paho.golang/packets"
	paho3 "github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/fennec-mqtt/fennec/packet"
)

const benchTopic = "sensors/building-7/floor-3/temperature"

func payloadOf(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

var subFilters = []string{
	"sensors/+/temperature", "sensors/+/humidity", "home/livingroom/#", "home/kitchen/+/state",
	"factory/line-1/machine/+/status", "alerts/#", "$SYS/broker/load/#", "devices/abc123/commands",
}

// ---- input builders: one logical packet, expressed for each library ----

func fPublish(n int) *packet.Publish {
	return &packet.Publish{Topic: benchTopic, QoS: 1, PacketID: 4242, Payload: payloadOf(n)}
}

func p5Publish(n int) *paho5.Publish {
	return &paho5.Publish{Topic: benchTopic, QoS: 1, PacketID: 4242, Payload: payloadOf(n), Properties: &paho5.Properties{}}
}

func p3Publish(n int) *paho3.PublishPacket {
	p := paho3.NewControlPacket(paho3.Publish).(*paho3.PublishPacket)
	p.TopicName, p.Qos, p.MessageID, p.Payload = benchTopic, 1, 4242, payloadOf(n)
	return p
}

func fConnect(v packet.Version) *packet.Connect {
	c := &packet.Connect{Version: v, CleanStart: true, KeepAlive: 30, ClientID: "fennec-bench-client-0001",
		Username: "device-0001", HasUsername: true, Password: []byte("correct horse battery staple"), HasPassword: true}
	if v == packet.V5 {
		c.Props.SetSessionExpiryInterval(3600)
		c.Props.SetReceiveMaximum(100)
		c.Props.SetMaximumPacketSize(1 << 20)
		c.Props.SetTopicAliasMaximum(10)
		c.Props.SetRequestProblemInformation(1)
		c.Props.AddUserProperty("region", "eu-west-1")
		c.Props.AddUserProperty("fw", "1.4.2")
	}
	return c
}

func p5Connect() *paho5.Connect {
	se, rm, mps, tam, rpi := uint32(3600), uint16(100), uint32(1<<20), uint16(10), byte(1)
	return &paho5.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, CleanStart: true, KeepAlive: 30,
		ClientID: "fennec-bench-client-0001", UsernameFlag: true, Username: "device-0001",
		PasswordFlag: true, Password: []byte("correct horse battery staple"),
		Properties: &paho5.Properties{SessionExpiryInterval: &se, ReceiveMaximum: &rm, MaximumPacketSize: &mps,
			TopicAliasMaximum: &tam, RequestProblemInfo: &rpi,
			User: []paho5.User{{Key: "region", Value: "eu-west-1"}, {Key: "fw", Value: "1.4.2"}}},
		WillProperties: &paho5.Properties{}}
}

func p3Connect() *paho3.ConnectPacket {
	c := paho3.NewControlPacket(paho3.Connect).(*paho3.ConnectPacket)
	c.ProtocolName, c.ProtocolVersion, c.CleanSession, c.Keepalive = "MQTT", 4, true, 30
	c.ClientIdentifier = "fennec-bench-client-0001"
	c.UsernameFlag, c.Username = true, "device-0001"
	c.PasswordFlag, c.Password = true, []byte("correct horse battery staple")
	return c
}

func fSubscribe() *packet.Subscribe {
	s := &packet.Subscribe{PacketID: 7}
	for _, f := range subFilters {
		s.Subscriptions = append(s.Subscriptions, packet.Subscription{Filter: f, QoS: 1})
	}
	return s
}

func p5Subscribe() *paho5.Subscribe {
	s := &paho5.Subscribe{PacketID: 7, Properties: &paho5.Properties{}}
	for _, f := range subFilters {
		s.Subscriptions = append(s.Subscriptions, paho5.SubOptions{Topic: f, QoS: 1})
	}
	return s
}

func p3Subscribe() *paho3.SubscribePacket {
	s := paho3.NewControlPacket(paho3.Subscribe).(*paho3.SubscribePacket)
	s.MessageID = 7
	for _, f := range subFilters {
		s.Topics = append(s.Topics, f)
		s.Qoss = append(s.Qoss, 1)
	}
	return s
}

// ---- library adapters ----

type codec struct {
	name   string
	encode func() ([]byte, error)      // encodes into a buffer the codec reuses
	decode func(b []byte) error        // decodes one whole packet held in b
	read   func(r *bytes.Reader) error // reads one packet from r
}

func fennecCodec(v packet.Version, p packet.Packet) codec {
	var out []byte
	var r *packet.Reader
	var rr = new(bytes.Reader)
	decode := func(b []byte) error {
		h, body, _, err := packet.Split(b)
		if err != nil {
			return err
		}
		_, err = packet.Decode(v, h, body)
		return err
	}
	// PUBLISH, CONNECT and SUBSCRIBE decode into a reused struct, as a connection's read loop can.
	switch p.(type) {
	case *packet.Publish:
		var into packet.Publish
		decode = func(b []byte) error {
			h, body, _, err := packet.Split(b)
			if err != nil {
				return err
			}
			return into.DecodeBody(v, h, body)
		}
	case *packet.Subscribe:
		var into packet.Subscribe
		decode = func(b []byte) error {
			h, body, _, err := packet.Split(b)
			if err != nil {
				return err
			}
			return into.DecodeBody(v, h, body)
		}
	}
	return codec{
		name: "fennec-" + map[packet.Version]string{packet.V311: "3.1.1", packet.V5: "5.0"}[v],
		encode: func() ([]byte, error) {
			var err error
			out, err = p.Append(out[:0], v)
			return out, err
		},
		decode: decode,
		read: func(src *bytes.Reader) error {
			if r == nil || rr != src {
				rr = src
				r = packet.NewReader(src, 0)
			}
			_, err := r.ReadPacket(v)
			return err
		},
	}
}

func pahoGolang(cp *paho5.ControlPacket) codec {
	rd := new(bytes.Reader)
	var buf bytes.Buffer
	return codec{
		name: "paho.golang",
		encode: func() ([]byte, error) {
			buf.Reset()
			_, err := cp.WriteTo(&buf)
			return buf.Bytes(), err
		},
		decode: func(b []byte) error { rd.Reset(b); _, err := paho5.ReadPacket(rd); return err },
		read:   func(r *bytes.Reader) error { _, err := paho5.ReadPacket(r); return err },
	}
}

func pahoMQTT(cp paho3.ControlPacket) codec {
	rd := new(bytes.Reader)
	var buf bytes.Buffer
	return codec{
		name: "paho.mqtt.golang",
		encode: func() ([]byte, error) {
			buf.Reset()
			err := cp.Write(&buf)
			return buf.Bytes(), err
		},
		decode: func(b []byte) error { rd.Reset(b); _, err := paho3.ReadPacket(rd); return err },
		read:   func(r *bytes.Reader) error { _, err := paho3.ReadPacket(r); return err },
	}
}

type benchCase struct {
	name   string
	size   int // payload size, for SetBytes
	codecs []codec
}

func benchCases() []benchCase {
	var cs []benchCase
	for _, n := range []int{64, 16 << 10} {
		name := fmt.Sprintf("PUBLISH-%dB", n)
		if n >= 1024 {
			name = fmt.Sprintf("PUBLISH-%dKiB", n>>10)
		}
		cs = append(cs, benchCase{name, n, []codec{
			fennecCodec(packet.V5, fPublish(n)),
			pahoGolang(p5Publish(n).ToControlPacket()),
			fennecCodec(packet.V311, fPublish(n)),
			pahoMQTT(p3Publish(n)),
		}})
	}
	cs = append(cs, benchCase{"CONNECT-props", 0, []codec{
		fennecCodec(packet.V5, fConnect(packet.V5)),
		pahoGolang(&paho5.ControlPacket{FixedHeader: paho5.FixedHeader{Type: paho5.CONNECT}, Content: p5Connect()}),
		fennecCodec(packet.V311, fConnect(packet.V311)),
		pahoMQTT(p3Connect()),
	}})
	cs = append(cs, benchCase{"SUBSCRIBE-8", 0, []codec{
		fennecCodec(packet.V5, fSubscribe()),
		pahoGolang(&paho5.ControlPacket{FixedHeader: paho5.FixedHeader{Type: paho5.SUBSCRIBE, Flags: 2}, Content: p5Subscribe()}),
		fennecCodec(packet.V311, fSubscribe()),
		pahoMQTT(p3Subscribe()),
	}})
	return cs
}

func BenchmarkCodec(b *testing.B) {
	for _, bc := range benchCases() {
		for _, c := range bc.codecs {
			enc, err := c.encode()
			if err != nil {
				b.Fatalf("%s %s: %v", bc.name, c.name, err)
			}
			enc = bytes.Clone(enc)
			b.Run(bc.name+"/encode/lib="+c.name, func(b *testing.B) {
				b.SetBytes(int64(len(enc)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.encode(); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(bc.name+"/decode/lib="+c.name, func(b *testing.B) {
				b.SetBytes(int64(len(enc)))
				b.ReportAllocs()
				for b.Loop() {
					if err := c.decode(enc); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(bc.name+"/encode+decode/lib="+c.name, func(b *testing.B) {
				b.SetBytes(int64(len(enc)))
				b.ReportAllocs()
				for b.Loop() {
					out, err := c.encode()
					if err != nil {
						b.Fatal(err)
					}
					if err := c.decode(out); err != nil {
						b.Fatal(err)
					}
				}
			})
			if bc.size > 0 {
				b.Run(bc.name+"/read/lib="+c.name, func(b *testing.B) {
					// Many copies of the packet in one stream, read back to back.
					const copies = 64
					stream := bytes.Repeat(enc, copies)
					src := bytes.NewReader(stream)
					b.SetBytes(int64(len(enc)))
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						if i%copies == 0 {
							src.Reset(stream)
						}
						i++
						if err := c.read(src); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
