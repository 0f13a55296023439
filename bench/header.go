package bench

import (
	"encoding/binary"
	"errors"
	"time"
)

// HeaderSize is the size of the header at the start of every payload the benchmark publishes;
// payloads are at least this long.
const HeaderSize = 28

// magic opens every header, so a subscriber tells benchmark messages from others on a topic.
var magic = [4]byte{'F', 'N', 'B', '1'}

// Header is what a benchmark payload carries: which run and publisher sent it, its sequence
// number within that publisher's stream (from 0), and when it was handed to the client.
type Header struct {
	Run       uint32
	Publisher uint32
	Seq       uint64
	Sent      time.Time
}

// ErrNoHeader reports a payload that does not start with a benchmark header.
var ErrNoHeader = errors.New("bench: payload has no benchmark header")

// Put writes h into the first HeaderSize bytes of p, which must be that long.
func (h Header) Put(p []byte) {
	_ = p[HeaderSize-1]
	copy(p, magic[:])
	binary.BigEndian.PutUint32(p[4:], h.Run)
	binary.BigEndian.PutUint32(p[8:], h.Publisher)
	binary.BigEndian.PutUint64(p[12:], h.Seq)
	binary.BigEndian.PutUint64(p[20:], uint64(h.Sent.UnixNano()))
}

// ParseHeader reads the header at the start of p.
func ParseHeader(p []byte) (Header, error) {
	if len(p) < HeaderSize || [4]byte(p[:4]) != magic {
		return Header{}, ErrNoHeader
	}
	return Header{
		Run:       binary.BigEndian.Uint32(p[4:]),
		Publisher: binary.BigEndian.Uint32(p[8:]),
		Seq:       binary.BigEndian.Uint64(p[12:]),
		Sent:      time.Unix(0, int64(binary.BigEndian.Uint64(p[20:]))),
	}, nil
}
