package filestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/fennec-mqtt/fennec/session"
)

var (
	bucketOut = []byte("outbound")
	bucketIn  = []byte("inbound")
)

// Store is a durable session.Store: every Put, PutInbound and DeleteInbound is committed and
// fsync'd before it returns, so a message accepted by Publish survives a crash of the process
// (or of the machine, when the disk honours fsync).
//
// Group commit: writes that arrive while a commit is running wait for it and then go together
// in the next transaction, with one fsync for the batch; each call still returns only once its
// own write is durable. Many publishers thus share fsyncs instead of queueing for one each.
//
// Deletes of outbound records are lazy and never touch the disk themselves: they are committed
// with the next write or on Close. A crash can therefore resend a message the broker had already
// acknowledged; QoS 1 allows that and, for QoS 2, the record then says "released", so only a
// PUBREL is resent and the broker answers PUBCOMP. The lazy deletes are bounded by the records
// written, which the client bounds by its in-flight window and offline queue.
//
// Only one process may open the file at a time (bbolt holds an exclusive lock).
type Store struct {
	db *bolt.DB

	mu      sync.Mutex
	closed  bool
	pending []uint64 // lazy deletes
	queue   []*write // writes waiting for the next commit
	leader  bool     // a goroutine is committing
	commits int      // transactions committed (for tests and stats)
	writes  int      // writes committed
}

type write struct {
	fn   func(tx *bolt.Tx) error
	done chan error
}

// Open opens (creating when needed) the store at path.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("session: open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketOut); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketIn)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("session: open store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func idKey(id uint16) []byte { return binary.BigEndian.AppendUint16(nil, id) }

func encodeRecord(r session.Record) []byte {
	b := make([]byte, 0, 3+len(r.Data))
	b = binary.BigEndian.AppendUint16(b, r.PacketID)
	if r.Released {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return append(b, r.Data...)
}

func decodeRecord(seq uint64, v []byte) (session.Record, error) {
	if len(v) < 3 {
		return session.Record{}, fmt.Errorf("session: corrupt record %d", seq)
	}
	return session.Record{Seq: seq, PacketID: binary.BigEndian.Uint16(v), Released: v[2] == 1,
		Data: append([]byte(nil), v[3:]...)}, nil
}

// commit makes fn durable, together with the pending deletes and the writes of other callers
// that arrive meanwhile: the first caller commits batch after batch while others queue.
func (s *Store) commit(fn func(tx *bolt.Tx) error) error {
	w := &write{fn: fn, done: make(chan error, 1)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return session.ErrStoreClosed
	}
	s.queue = append(s.queue, w)
	if s.leader {
		s.mu.Unlock()
		return <-w.done
	}
	s.leader = true
	for len(s.queue) > 0 {
		batch, deletes := s.queue, s.pending
		s.queue, s.pending = nil, nil
		s.mu.Unlock()
		err := s.run(batch, deletes)
		if err != nil && len(batch) > 1 {
			// One write's failure must not fail the others: commit them one by one.
			for _, w := range batch {
				w.done <- s.run([]*write{w}, nil)
			}
		} else {
			for _, w := range batch {
				w.done <- err
			}
		}
		s.mu.Lock()
		if err != nil {
			s.pending = append(s.pending, deletes...)
		}
		s.commits++
		s.writes += len(batch)
	}
	s.leader = false
	s.mu.Unlock()
	return <-w.done
}

func (s *Store) run(batch []*write, deletes []uint64) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOut)
		for _, seq := range deletes {
			if err := b.Delete(seqKey(seq)); err != nil {
				return err
			}
		}
		for _, w := range batch {
			if w.fn == nil {
				continue
			}
			if err := w.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("session: store: %w", err)
	}
	return nil
}

// Commits returns how many transactions (fsyncs) and how many writes the store committed.
func (s *Store) Commits() (transactions, writes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commits, s.writes
}

func (s *Store) Put(r session.Record) error {
	v := encodeRecord(r)
	return s.commit(func(tx *bolt.Tx) error { return tx.Bucket(bucketOut).Put(seqKey(r.Seq), v) })
}

func (s *Store) Delete(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return session.ErrStoreClosed
	}
	s.pending = append(s.pending, seq)
	return nil
}

func (s *Store) PutInbound(id uint16) error {
	return s.commit(func(tx *bolt.Tx) error { return tx.Bucket(bucketIn).Put(idKey(id), nil) })
}

func (s *Store) DeleteInbound(id uint16) error {
	return s.commit(func(tx *bolt.Tx) error { return tx.Bucket(bucketIn).Delete(idKey(id)) })
}

func (s *Store) Load() ([]session.Record, []uint16, error) {
	if err := s.commit(nil); err != nil {
		return nil, nil, err
	}
	var out []session.Record
	var in []uint16
	err := s.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketOut).ForEach(func(k, v []byte) error {
			r, err := decodeRecord(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketIn).ForEach(func(k, _ []byte) error {
			in = append(in, binary.BigEndian.Uint16(k))
			return nil
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("session: load: %w", err)
	}
	return out, in, nil
}

// Close commits the pending deletes and closes the file.
func (s *Store) Close() error {
	err := s.commit(nil)
	if errors.Is(err, session.ErrStoreClosed) {
		return nil
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	cerr := s.db.Close()
	if err != nil {
		return err
	}
	return cerr
}
