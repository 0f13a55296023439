package broker

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// File delivery requests the service refuses get AWS's codes on rejected/json with the client
// token; a get answers one data message per block, the last one short.
func TestStreamRequests(t *testing.T) {
	s := newStreams(&Broker{log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.create(Stream{ID: "fw", Files: map[int][]byte{0: make([]byte, 1000)}}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Stream{{ID: "a b", Files: map[int][]byte{0: nil}}, {ID: "x"}, {ID: "x", Files: map[int][]byte{256: nil}}} {
		if s.create(bad) == nil {
			t.Errorf("created %+v", bad)
		}
	}
	for _, c := range []struct{ op, req, code string }{
		{"get", `{"c":"k","f":0,"l":100,"o":0}`, "BlockSizeOutOfBounds"},
		{"get", `{"c":"k","f":0,"l":256,"o":4}`, "OffsetOutOfBounds"},
		{"get", `{"c":"k","f":0,"l":256,"o":0,"n":65}`, "InvalidRequest"},
		{"get", `{"c":"k","f":1,"l":256,"o":0}`, "ResourceNotFound"},
		{"get", `{"c":"k","s":2,"f":0,"l":256,"o":0}`, "VersionMismatch"},
		{"describe", `{"c":"k"`, "InvalidRequest"},
		{"get", `{"c":"k","f":0,"l":256,"o":0,"x":"` + strings.Repeat("x", 5000) + `"}`, "InvalidRequest"},
	} {
		outs := s.serve("fw", c.op, []byte(c.req))
		var e struct{ O, M, C string }
		if len(outs) != 1 || outs[0].suffix != "rejected/json" || json.Unmarshal(outs[0].payload, &e) != nil || e.O != c.code {
			t.Errorf("%s %.60s: %+v", c.op, c.req, outs)
		}
	}
	outs := s.serve("fw", "get", []byte(`{"c":"k","f":0,"l":256,"o":1,"n":10}`))
	if len(outs) != 3 {
		t.Fatalf("%d blocks from 1 of a 4-block file", len(outs))
	}
	var last struct{ L, I int }
	json.Unmarshal(outs[2].payload, &last)
	if last.I != 3 || last.L != 1000-3*256 {
		t.Fatalf("last block %+v", last)
	}
}
