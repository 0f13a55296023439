package packet_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
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
			for i, want := range cases {
				got, err := r.ReadPacket(v)
				if err != nil {
					t.Fatalf("%v %s #%d: ReadPacket: %v", v, name, i, err)
				}
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
