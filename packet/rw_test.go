package packet_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/fennec-mqtt/fennec/packet"
)

func TestReaderWriterStream(t *testing.T) {
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		var buf bytes.Buffer
		w := packet.NewWriter(&buf)
		cases := roundTripCases(v)
		for _, p := range cases {
			if err := w.WritePacket(p, v); err != nil {
				t.Fatalf("%v: WritePacket(%T): %v", v, p, err)
			}
		}
		for name, src := range map[string]io.Reader{
			"whole":   bytes.NewReader(buf.Bytes()),
			"onebyte": iotest.OneByteReader(bytes.NewReader(buf.Bytes())),
			"half":    iotest.HalfReader(bytes.NewReader(buf.Bytes())),
		} {
			r := packet.NewReader(src, 0)
			// Read everything first: a packet must stay intact while later ones are read.
			var gots []packet.Packet
			for i := range cases {
				got, err := r.ReadPacket(v)
				if err != nil {
					t.Fatalf("%v %s #%d: ReadPacket: %v", v, name, i, err)
				}
				gots = append(gots, got)
			}
			for i, want := range cases {
				got := gots[i]
				if v == packet.V311 {
					want = stripProps(want)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%v %s #%d: got %+v want %+v", v, name, i, got, want)
				}
			}
			if _, err := r.ReadPacket(v); err != io.EOF {
				t.Errorf("%v %s: at end: %v, want io.EOF", v, name, err)
			}
		}
	}
}

func TestReaderTruncated(t *testing.T) {
	b, _ := (&packet.Publish{Topic: "t", Payload: []byte("payload")}).Append(nil, packet.V5)
	for n := 1; n < len(b); n++ {
		r := packet.NewReader(bytes.NewReader(b[:n]), 0)
		if _, err := r.ReadPacket(packet.V5); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%d of %d bytes: err = %v, want io.ErrUnexpectedEOF", n, len(b), err)
		}
	}
}

// countingReader counts the bytes it hands out.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func heapAllocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestReaderRefusesOversizeBeforeAllocating(t *testing.T) {
	// A PUBLISH header claiming the largest remaining length MQTT allows, then a few bytes.
	claim := append([]byte{0x30, 0xff, 0xff, 0xff, 0x7f}, "\x00\x01abcdef"...)

	// With a configured maximum, the packet is refused from its header alone.
	src := &countingReader{r: bytes.NewReader(claim)}
	r := packet.NewReader(src, 1<<20)
	var err error
	alloc := heapAllocated(func() { _, err = r.ReadPacket(packet.V5) })
	checkRule(t, "oversize", err, packet.ErrPacketTooLarge, "")
	var pe *packet.Error
	if errors.As(err, &pe) && pe.Reason != packet.PacketTooLarge {
		t.Errorf("reason = %v", pe.Reason)
	}
	if alloc > 64<<10 {
		t.Errorf("refusing the packet allocated %d bytes", alloc)
	}

	// With the protocol maximum (0), a peer that claims 268,435,455 bytes and sends a few costs
	// about what it sent, not what it claimed.
	r = packet.NewReader(bytes.NewReader(claim), 0)
	alloc = heapAllocated(func() { _, err = r.ReadPacket(packet.V5) })
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("err = %v, want io.ErrUnexpectedEOF", err)
	}
	if alloc > 1<<20 {
		t.Errorf("a 268,435,455-byte claim with %d bytes sent allocated %d bytes", len(claim), alloc)
	}

	// SetMaxPacketSize applies to the next packet; the limit counts the whole packet.
	ok, _ := (&packet.Publish{Topic: "t", Payload: make([]byte, 100)}).Append(nil, packet.V311)
	r = packet.NewReader(bytes.NewReader(append(append([]byte{}, ok...), ok...)), uint32(len(ok)))
	if _, err := r.ReadPacket(packet.V311); err != nil {
		t.Fatalf("packet of exactly the maximum size: %v", err)
	}
	r.SetMaxPacketSize(uint32(len(ok) - 1))
	if _, err := r.ReadPacket(packet.V311); !errors.Is(err, packet.ErrPacketTooLarge) {
		t.Errorf("packet one byte over the maximum: %v", err)
	}
}

func TestReaderLargeBodyGrowsAsItArrives(t *testing.T) {
	p := &packet.Publish{Topic: "big", QoS: 1, PacketID: 9, Payload: bytes.Repeat([]byte("0123456789abcdef"), 70000)}
	b, _ := p.Append(nil, packet.V5)
	r := packet.NewReader(iotest.HalfReader(bytes.NewReader(b)), 0)
	got, err := r.ReadPacket(packet.V5)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Error("large PUBLISH differs after reading")
	}
}

// countingWriter counts Write calls.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++
	return c.Buffer.Write(p)
}

func TestWriterOneWritePerPacket(t *testing.T) {
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		cw := &countingWriter{}
		w := packet.NewWriter(cw)
		ps := append(roundTripCases(v), &packet.Publish{Topic: "big", Payload: make([]byte, 64<<10)})
		for i, p := range ps {
			before := cw.writes
			if err := w.WritePacket(p, v); err != nil {
				t.Fatal(err)
			}
			if cw.writes-before != 1 {
				t.Errorf("%v #%d %T: %d writes, want 1", v, i, p, cw.writes-before)
			}
		}
		before := cw.writes
		if err := w.WritePackets(v, ps...); err != nil {
			t.Fatal(err)
		}
		if cw.writes-before != 1 {
			t.Errorf("%v WritePackets: %d writes, want 1", v, cw.writes-before)
		}
		// The stream holds every packet twice, in order.
		r := packet.NewReader(&cw.Buffer, 0)
		for round := 0; round < 2; round++ {
			for i := range ps {
				if _, err := r.ReadPacket(v); err != nil {
					t.Fatalf("%v round %d #%d: %v", v, round, i, err)
				}
			}
		}
		// A packet that fails to encode writes nothing.
		before = cw.writes
		if err := w.WritePacket(&packet.Publish{Topic: "a/#"}, v); err == nil {
			t.Error("invalid packet written")
		}
		if err := w.WritePackets(v, &packet.Pingreq{}, &packet.Publish{QoS: 3}); err == nil {
			t.Error("invalid batch written")
		}
		if cw.writes != before {
			t.Errorf("%d writes for packets that failed to encode", cw.writes-before)
		}
	}
}

// SetSkipOversize: a PUBLISH over the maximum packet size is read past as it arrives — its
// packet identifier kept, nothing of its size held — and the packets around it decode as
// usual; a hostile claim costs what was sent, and a malformed oversize PUBLISH is refused.
func TestReaderSkipsOversize(t *testing.T) {
	small := func(topic string, id uint16, qos packet.QoS) []byte {
		b, err := (&packet.Publish{Topic: topic, QoS: qos, PacketID: id, Payload: []byte("p")}).Append(nil, packet.V311)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, qos := range []packet.QoS{0, 1, 2} {
		big, err := (&packet.Publish{Topic: "big/topic", QoS: qos, PacketID: 7 * uint16(min(qos, 1)), Payload: make([]byte, 3<<20)}).Append(nil, packet.V311)
		if err != nil {
			t.Fatal(err)
		}
		stream := append(append(append([]byte{}, small("a", 1, 1)...), big...), small("b", 2, 1)...)
		// one byte per read: the skip must not depend on how the bytes come
		r := packet.NewReader(iotest.OneByteReader(bytes.NewReader(stream)), 1<<20)
		r.SetSkipOversize(true)
		var got []packet.Packet
		alloc := heapAllocated(func() {
			for range 3 {
				p, err := r.ReadPacket(packet.V311)
				if err != nil {
					t.Fatalf("QoS %d: %v", qos, err)
				}
				got = append(got, p)
			}
		})
		if p, ok := got[0].(*packet.Publish); !ok || p.Topic != "a" {
			t.Fatalf("QoS %d: first %#v", qos, got[0])
		}
		ov, ok := got[1].(*packet.OversizePublish)
		if !ok || ov.QoS != qos || ov.Size != len(big) || ov.Max != 1<<20 {
			t.Fatalf("QoS %d: second %#v, want the skipped PUBLISH of %d bytes", qos, got[1], len(big))
		}
		if want := 7 * uint16(min(qos, 1)); ov.PacketID != want {
			t.Fatalf("QoS %d: packet ID %d, want %d", qos, ov.PacketID, want)
		}
		if p, ok := got[2].(*packet.Publish); !ok || p.Topic != "b" || p.PacketID != 2 {
			t.Fatalf("QoS %d: third %#v", qos, got[2])
		}
		if alloc > 256<<10 {
			t.Errorf("QoS %d: skipping a %d-byte PUBLISH allocated %d bytes", qos, len(big), alloc)
		}
		if _, err := ov.Append(nil, packet.V311); err == nil {
			t.Error("a skipped PUBLISH encoded")
		}
	}

	// A claim of 268,435,455 bytes followed by a few: the skip ends at the stream's end.
	claim := append([]byte{0x32, 0xff, 0xff, 0xff, 0x7f}, "\x00\x01t\x00\x05abc"...)
	r := packet.NewReader(bytes.NewReader(claim), 1<<20)
	r.SetSkipOversize(true)
	if _, err := r.ReadPacket(packet.V311); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated oversize PUBLISH: %v, want io.ErrUnexpectedEOF", err)
	}
	for name, b := range map[string][]byte{
		"topic past the end": {0x30, 0xd0, 0x0f, 0xff, 0xff}, // 2,000 bytes, topic 65,535
		"QoS 3":              {0x36, 0x80, 0x80, 0x40, 0, 1},
		"packet ID 0":        append([]byte{0x32, 0x80, 0x80, 0x40, 0, 1, 't', 0, 0}, make([]byte, 1<<20)...),
	} {
		r := packet.NewReader(bytes.NewReader(b), 1<<10)
		r.SetSkipOversize(true)
		if _, err := r.ReadPacket(packet.V311); !errors.Is(err, packet.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	// Other packets over the maximum are still refused, and without SetSkipOversize so is a PUBLISH.
	sub, _ := (&packet.Suback{PacketID: 1, ReasonCodes: make([]packet.ReasonCode, 2000)}).Append(nil, packet.V311)
	r = packet.NewReader(bytes.NewReader(sub), 1<<10)
	r.SetSkipOversize(true)
	if _, err := r.ReadPacket(packet.V311); !errors.Is(err, packet.ErrPacketTooLarge) {
		t.Errorf("oversize SUBACK: %v, want ErrPacketTooLarge", err)
	}
}
