package session

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketOut = []byte("outbound")
	bucketIn  = []byte("inbound")
)

// FileStore is a durable Store in a bbolt database file: every Put, PutInbound and
// DeleteInbound is committed and fsync'd before it returns, so a message accepted by Publish
// survives a crash of the process (or of the machine, when the disk honours fsync).
//
// Deletes of outbound records are lazy: they are collected and committed with the next
// write or on Close, which halves the fsyncs per QoS 1 message. A crash can therefore resend a
// message the broker had already acknowledged; QoS 1 allows that and, for QoS 2, the record
// then says "released", so only a PUBREL is resent and the broker answers PUBCOMP.
//
// Only one process may open the file at a time (bbolt holds an exclusive lock).
type FileStore struct {
	mu      sync.Mutex
	db      *bolt.DB
	pending []uint64 // lazy deletes
}

// OpenFileStore opens (creating when needed) the store at path.
func OpenFileStore(path string) (*FileStore, error) {
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
	return &FileStore{db: db}, nil
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func idKey(id uint16) []byte { return binary.BigEndian.AppendUint16(nil, id) }

func encodeRecord(r Record) []byte {
	b := make([]byte, 0, 3+len(r.Data))
	b = binary.BigEndian.AppendUint16(b, r.PacketID)
	if r.Released {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return append(b, r.Data...)
}

func decodeRecord(seq uint64, v []byte) (Record, error) {
	if len(v) < 3 {
		return Record{}, fmt.Errorf("session: corrupt record %d", seq)
	}
	return Record{Seq: seq, PacketID: binary.BigEndian.Uint16(v), Released: v[2] == 1,
		Data: append([]byte(nil), v[3:]...)}, nil
}

// update runs fn together with the pending deletes in one committed transaction.
func (s *FileStore) update(fn func(tx *bolt.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return ErrStoreClosed
	}
	pending := s.pending
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOut)
		for _, seq := range pending {
			if err := b.Delete(seqKey(seq)); err != nil {
				return err
			}
		}
		if fn == nil {
			return nil
		}
		return fn(tx)
	})
	if err != nil {
		return fmt.Errorf("session: store: %w", err)
	}
	s.pending = s.pending[:0]
	return nil
}

func (s *FileStore) Put(r Record) error {
	return s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOut).Put(seqKey(r.Seq), encodeRecord(r))
	})
}

func (s *FileStore) Delete(seq uint64) error {
	s.mu.Lock()
	if s.db == nil {
		s.mu.Unlock()
		return ErrStoreClosed
	}
	s.pending = append(s.pending, seq)
	n := len(s.pending)
	s.mu.Unlock()
	if n >= 256 {
		return s.update(nil)
	}
	return nil
}

func (s *FileStore) PutInbound(id uint16) error {
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketIn).Put(idKey(id), nil) })
}

func (s *FileStore) DeleteInbound(id uint16) error {
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketIn).Delete(idKey(id)) })
}

func (s *FileStore) Load() ([]Record, []uint16, error) {
	if err := s.update(nil); err != nil {
		return nil, nil, err
	}
	var out []Record
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

func (s *FileStore) Reset() error {
	return s.update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketOut, bucketIn} {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *FileStore) Close() error {
	err := s.update(nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	cerr := s.db.Close()
	s.db = nil
	if err == ErrStoreClosed {
		err = nil
	}
	if err == nil {
		err = cerr
	}
	return err
}
