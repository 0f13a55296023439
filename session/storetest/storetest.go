package storetest

import (
	"bytes"
	"testing"

	"github.com/fennec-mqtt/fennec/session"
)

// Run checks the Store contract on a new, empty store from open: records replaced by Seq and
// loaded in ascending Seq, deletes (of missing records too), inbound IDs, and no write after
// Close.
func Run(t *testing.T, open func() session.Store) {
	t.Helper()
	s := open()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for seq := uint64(5); seq >= 1; seq-- { // inserted out of order
		must(s.Put(session.Record{Seq: seq, PacketID: uint16(seq * 10), Data: []byte{byte(seq)}}))
	}
	must(s.Put(session.Record{Seq: 3, PacketID: 30, Released: true, Data: []byte{3}}))
	must(s.Delete(2))
	must(s.Delete(99))
	must(s.PutInbound(7))
	must(s.PutInbound(9))
	must(s.DeleteInbound(7))
	out, in, err := s.Load()
	must(err)
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
	must(s.Close())
	if err := s.Put(session.Record{Seq: 1}); err == nil {
		t.Fatal("Put after Close succeeded")
	}
}
