package session

import (
	"errors"
	"sort"
	"sync"
)

// Record is one outbound QoS 1 or QoS 2 message that the broker has not yet fully
// acknowledged, as a Store keeps it.
type Record struct {
	// Seq orders records: messages are resent in ascending Seq, the order Publish accepted them.
	Seq uint64
	// PacketID is the packet identifier the message was sent with; 0 while not yet sent.
	PacketID uint16
	// Released is true once PUBREC arrived for a QoS 2 message: only PUBREL remains to be sent.
	Released bool
	// Data is the PUBLISH packet as Marshal encodes it.
	Data []byte
}

// Store keeps a client's session state: outbound QoS 1/2 messages until the broker has
// acknowledged them, and the packet IDs of inbound QoS 2 messages delivered but not yet
// released. A Store is used by one client at a time; its methods are safe for concurrent use.
//
// Put and the inbound methods must be durable when they return for a durable store: the client
// calls Put before a message leaves Publish, and PutInbound before it sends PUBREC. The client
// calls them outside its locks and from several goroutines at once, so a durable store can
// commit concurrent calls together. Delete is called with the client's lock held: it must not
// wait for the disk. Delete may
// be lazy (a lost Delete only causes a duplicate resend, which QoS 1 and 2 allow).
type Store interface {
	// Put inserts or replaces the record with r.Seq.
	Put(r Record) error
	// Delete removes the record with seq; a missing record is not an error.
	Delete(seq uint64) error
	// PutInbound records that the inbound QoS 2 message with id was delivered.
	PutInbound(id uint16) error
	// DeleteInbound forgets id (its PUBREL arrived).
	DeleteInbound(id uint16) error
	// Load returns the outbound records in ascending Seq and the inbound IDs.
	Load() (out []Record, in []uint16, err error)
	// Close releases the store's resources.
	Close() error
}

// ErrStoreClosed is returned by a closed store.
var ErrStoreClosed = errors.New("session: store closed")

// MemoryStore is a Store in memory: it survives reconnects, not a restart of the process. The
// zero value is ready to use.
type MemoryStore struct {
	mu     sync.Mutex
	out    map[uint64]Record
	in     map[uint16]struct{}
	closed bool
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{} }

func (s *MemoryStore) init() error {
	if s.closed {
		return ErrStoreClosed
	}
	if s.out == nil {
		s.out = map[uint64]Record{}
		s.in = map[uint16]struct{}{}
	}
	return nil
}

func (s *MemoryStore) Put(r Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.init(); err != nil {
		return err
	}
	s.out[r.Seq] = r
	return nil
}

func (s *MemoryStore) Delete(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.init(); err != nil {
		return err
	}
	delete(s.out, seq)
	return nil
}

func (s *MemoryStore) PutInbound(id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.init(); err != nil {
		return err
	}
	s.in[id] = struct{}{}
	return nil
}

func (s *MemoryStore) DeleteInbound(id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.init(); err != nil {
		return err
	}
	delete(s.in, id)
	return nil
}

func (s *MemoryStore) Load() ([]Record, []uint16, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.init(); err != nil {
		return nil, nil, err
	}
	out := make([]Record, 0, len(s.out))
	for _, r := range s.out {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	in := make([]uint16, 0, len(s.in))
	for id := range s.in {
		in = append(in, id)
	}
	sort.Slice(in, func(i, j int) bool { return in[i] < in[j] })
	return out, in, nil
}

func (s *MemoryStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
