package packet_test

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/fennec-mqtt/fennec/packet"
)

func FuzzDecodeV311(f *testing.F) { fuzzDecode(f, packet.V311) }
func FuzzDecodeV5(f *testing.F)   { fuzzDecode(f, packet.V5) }

// fuzzDecode checks, for any input: decoding never panics and fails only with *packet.Error;
// what decodes re-encodes (save one sender-only rule), and the re-encoding is stable
// (decode → encode → decode → encode gives the same bytes); and the Reader never allocates in
// proportion to a length the input merely claims. The golden vectors and the round-trip cases
// are the seed corpus, so `go test` runs them on every CI run.
func fuzzDecode(f *testing.F, v packet.Version) {
	for _, vec := range loadVectors(f) {
		f.Add(vec.b)
	}
	for _, vv := range []packet.Version{packet.V311, packet.V5} {
		for _, p := range roundTripCases(vv) {
			b, err := p.Append(nil, vv)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x01, 'a'})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := packet.Unmarshal(v, data)
		if err != nil {
			var pe *packet.Error
			if !errors.As(err, &pe) {
				t.Fatalf("decode error is not *packet.Error: %v", err)
			}
		} else {
			ev := v
			if c, ok := p.(*packet.Connect); ok {
				ev = c.Version
			}
			b1, err := p.Append(nil, ev)
			if err != nil {
				// What decodes must encode, except where a rule binds only the sender: a 3.1.1
				// client with an empty client identifier must ask for a clean session (the
				// server answers such a CONNECT with return code 2 rather than closing).
				var pe *packet.Error
				if !errors.As(err, &pe) || pe.Rule != "[MQTT-3.1.3-7]" {
					t.Fatalf("decoded packet does not encode: %v\n in: % x", err, data)
				}
			} else {
				p2, err := packet.Unmarshal(v, b1)
				if err != nil {
					t.Fatalf("re-encoded packet does not decode: %v\n in: % x\nout: % x", err, data, b1)
				}
				b2, err := p2.Append(nil, ev)
				if err != nil || !bytes.Equal(b1, b2) {
					t.Fatalf("encoding is not stable: %v\n% x\n% x", err, b1, b2)
				}
			}
		}

		// The Reader on the same bytes: same verdict, bounded allocation.
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		rp, rerr := packet.NewReader(bytes.NewReader(data), 0).ReadPacket(v)
		runtime.ReadMemStats(&ms1)
		if limit := uint64(256<<10 + 16*len(data)); ms1.TotalAlloc-ms0.TotalAlloc > limit {
			t.Fatalf("Reader allocated %d bytes for %d bytes of input", ms1.TotalAlloc-ms0.TotalAlloc, len(data))
		}
		if err == nil && (rerr != nil || rp.Type() != p.Type()) {
			t.Fatalf("Unmarshal accepts, Reader says %v", rerr)
		}
	})
}

// FuzzReaderSkipOversize: a Reader that skips oversize PUBLISH packets (a small maximum, so
// that most inputs have one) never panics, fails only with *packet.Error or an I/O error, and
// reads only as many packets as the input's bytes can hold; each skipped PUBLISH has a QoS the
// protocol allows and a packet identifier exactly when its QoS needs one.
func FuzzReaderSkipOversize(f *testing.F) {
	f.Add([]byte{0x32, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x01, 'a', 0, 5})
	f.Add(append([]byte{0x30, 0x90, 0x01, 0x00, 0x01, 'a'}, make([]byte, 143)...))
	f.Add([]byte{0x30, 0xd0, 0x0f, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := packet.NewReader(bytes.NewReader(data), 64)
		r.SetSkipOversize(true)
		for n := 0; ; n++ {
			if n > len(data)/2 {
				t.Fatalf("%d packets from %d bytes", n, len(data))
			}
			p, err := r.ReadPacket(packet.V311)
			if err != nil {
				var pe *packet.Error
				if !errors.As(err, &pe) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("error %v (%T)", err, err)
				}
				return
			}
			if ov, ok := p.(*packet.OversizePublish); ok {
				if ov.QoS > 2 || (ov.QoS == 0) != (ov.PacketID == 0) || ov.Size <= 64 {
					t.Fatalf("skipped %+v", ov)
				}
			}
		}
	})
}
