package session_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/session"
)

func stores(t *testing.T) map[string]func() session.Store {
	dir := t.TempDir()
	return map[string]func() session.Store{
		"memory": func() session.Store { return session.NewMemoryStore() },
		"file": func() session.Store {
			s, err := session.OpenFileStore(filepath.Join(dir, "s.db"))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
}

func TestStore(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			s := open()
			for seq := uint64(5); seq >= 1; seq-- { // inserted out of order
				if err := s.Put(session.Record{Seq: seq, PacketID: uint16(seq * 10), Data: []byte{byte(seq)}}); err != nil {
					t.Fatal(err)
				}
			}
			must(t, s.Put(session.Record{Seq: 3, PacketID: 30, Released: true, Data: []byte{3}}))
			must(t, s.Delete(2))
			must(t, s.Delete(99))
			must(t, s.PutInbound(7))
			must(t, s.PutInbound(9))
			must(t, s.DeleteInbound(7))
			out, in, err := s.Load()
			must(t, err)
			var seqs []uint64
			for _, r := range out {
				seqs = append(seqs, r.Seq)
				if r.PacketID != uint16(r.Seq*10) || !bytes.Equal(r.Data, []byte{byte(r.Seq)}) || r.Released != (r.Seq == 3) {
					t.Fatalf("record %+v", r)
				}
			}
			if len(seqs) != 4 || seqs[0] != 1 || seqs[1] != 3 || seqs[2] != 4 || seqs[3] != 5 {
				t.Fatalf("seqs %v, want [1 3 4 5]", seqs)
			}
			if len(in) != 1 || in[0] != 9 {
				t.Fatalf("inbound %v, want [9]", in)
			}
			must(t, s.Reset())
			out, in, err = s.Load()
			must(t, err)
			if len(out) != 0 || len(in) != 0 {
				t.Fatalf("after Reset: %v %v", out, in)
			}
			must(t, s.Close())
			if err := s.Put(session.Record{Seq: 1}); err == nil {
				t.Fatal("Put after Close succeeded")
			}
		})
	}
}

// TestFileStoreReopen: records survive closing and reopening, lazy deletes included.
func TestFileStoreReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := session.OpenFileStore(path)
	must(t, err)
	must(t, s.Put(session.Record{Seq: 1, PacketID: 1, Data: []byte("a")}))
	must(t, s.Put(session.Record{Seq: 2, PacketID: 2, Data: []byte("b")}))
	must(t, s.Delete(1))
	must(t, s.PutInbound(42))
	must(t, s.Close())
	s, err = session.OpenFileStore(path)
	must(t, err)
	defer s.Close()
	out, in, err := s.Load()
	must(t, err)
	if len(out) != 1 || out[0].Seq != 2 || string(out[0].Data) != "b" || len(in) != 1 || in[0] != 42 {
		t.Fatalf("reopened: %+v %v", out, in)
	}
}

func TestIDs(t *testing.T) {
	var ids session.IDs
	seen := map[uint16]bool{}
	for i := 0; i < 65535; i++ {
		id, ok := ids.Take()
		if !ok || id == 0 || seen[id] {
			t.Fatalf("Take %d: id %d ok %v", i, id, ok)
		}
		seen[id] = true
	}
	if _, ok := ids.Take(); ok {
		t.Fatal("Take succeeded with all identifiers in use")
	}
	ids.Free(500)
	if id, ok := ids.Take(); !ok || id != 500 {
		t.Fatalf("after Free(500): %d %v", id, ok)
	}
	if ids.Len() != 65535 {
		t.Fatalf("Len %d", ids.Len())
	}
}

func TestMarshalPublish(t *testing.T) {
	p := &packet.Publish{QoS: 2, Retain: true, Topic: "a/b", PacketID: 9, Payload: []byte("hello")}
	p.Props.SetContentType("text/plain")
	p.Props.AddUserProperty("k", "v")
	b, err := session.MarshalPublish(p)
	must(t, err)
	q, err := session.UnmarshalPublish(b)
	must(t, err)
	if q.Topic != p.Topic || q.QoS != 2 || !q.Retain || q.PacketID != 9 || string(q.Payload) != "hello" ||
		q.Props.ContentType != "text/plain" || len(q.Props.UserProperties) != 1 {
		t.Fatalf("round trip: %+v", q)
	}
	if _, err := session.UnmarshalPublish(b[:len(b)-1]); err == nil {
		t.Fatal("truncated record decoded")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
