package filestore_test

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/fennec-mqtt/fennec/session"
	"github.com/fennec-mqtt/fennec/session/filestore"
	"github.com/fennec-mqtt/fennec/session/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func() session.Store {
		s, err := filestore.Open(filepath.Join(t.TempDir(), "s.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestReopen: records survive closing and reopening, lazy deletes included.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := filestore.Open(path)
	must(t, err)
	must(t, s.Put(session.Record{Seq: 1, PacketID: 1, Data: []byte("a")}))
	must(t, s.Put(session.Record{Seq: 2, PacketID: 2, Data: []byte("b")}))
	must(t, s.Delete(1))
	must(t, s.PutInbound(42))
	must(t, s.Close())
	s, err = filestore.Open(path)
	must(t, err)
	defer s.Close()
	out, in, err := s.Load()
	must(t, err)
	if len(out) != 1 || out[0].Seq != 2 || string(out[0].Data) != "b" || len(in) != 1 || in[0] != 42 {
		t.Fatalf("reopened: %+v %v", out, in)
	}
}

// TestGroupCommit: concurrent writers share transactions (one fsync per batch), and every
// write is in the file when its call returns.
func TestGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := filestore.Open(path)
	must(t, err)
	const writers, each = 16, 25
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				seq := uint64(w*each + i + 1)
				if err := s.Put(session.Record{Seq: seq, PacketID: uint16(seq), Data: []byte{byte(seq)}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	tx, writes := s.Commits()
	if writes != writers*each {
		t.Fatalf("%d writes committed, want %d", writes, writers*each)
	}
	if tx >= writes {
		t.Fatalf("%d transactions for %d concurrent writes: no group commit", tx, writes)
	}
	t.Logf("%d writes in %d transactions", writes, tx)
	must(t, s.Close())
	s, err = filestore.Open(path)
	must(t, err)
	defer s.Close()
	out, _, err := s.Load()
	must(t, err)
	if len(out) != writers*each {
		t.Fatalf("%d records after reopening, want %d", len(out), writers*each)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
