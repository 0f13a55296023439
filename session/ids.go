package session

import (
	"errors"
	"fmt"

	"github.com/fennec-mqtt/fennec/packet"
)

// IDs allocates packet identifiers 1..65535. It hands them out round-robin, so an identifier
// is reused as late as possible, and never hands out one still in use [MQTT-2.2.1-3]. It keeps
// only the identifiers in use (an idle client holds no bitmap). Not safe for concurrent use.
type IDs struct {
	used map[uint16]struct{}
	next uint16
}

// Take returns a free identifier and marks it used; ok is false when all 65,535 are in use.
func (a *IDs) Take() (id uint16, ok bool) {
	if len(a.used) >= 65535 {
		return 0, false
	}
	for {
		a.next++
		if a.next == 0 {
			a.next = 1
		}
		if !a.InUse(a.next) {
			a.Use(a.next)
			return a.next, true
		}
	}
}

// Use marks id as used (a restored session).
func (a *IDs) Use(id uint16) {
	if id == 0 {
		return
	}
	if a.used == nil {
		a.used = make(map[uint16]struct{})
	}
	a.used[id] = struct{}{}
}

// Free releases id.
func (a *IDs) Free(id uint16) {
	delete(a.used, id)
	if len(a.used) == 0 && a.used != nil {
		a.used = nil // give the map's memory back when idle
	}
}

// InUse reports whether id is in use.
func (a *IDs) InUse(id uint16) bool {
	_, ok := a.used[id]
	return ok
}

// Len returns the number of identifiers in use.
func (a *IDs) Len() int { return len(a.used) }

// MarshalPublish encodes p for a Record (MQTT 5 wire format, which keeps every property).
func MarshalPublish(p *packet.Publish) ([]byte, error) {
	return p.Append(nil, packet.V5)
}

// UnmarshalPublish decodes a Record's Data.
func UnmarshalPublish(b []byte) (*packet.Publish, error) {
	if len(b) < 2 {
		return nil, errors.New("session: record too short")
	}
	// Skip the fixed header's remaining length (a variable byte integer).
	i, n := 1, 0
	for shift := 0; ; shift += 7 {
		if i >= len(b) || shift > 21 {
			return nil, errors.New("session: corrupt record header")
		}
		c := b[i]
		i++
		n |= int(c&0x7f) << shift
		if c&0x80 == 0 {
			break
		}
	}
	if n != len(b)-i {
		return nil, fmt.Errorf("session: record length %d, header says %d", len(b)-i, n)
	}
	p, err := packet.Decode(packet.V5, b[0], b[i:])
	if err != nil {
		return nil, fmt.Errorf("session: decode record: %w", err)
	}
	pub, ok := p.(*packet.Publish)
	if !ok {
		return nil, fmt.Errorf("session: record holds %v, not PUBLISH", p.Type())
	}
	return pub, nil
}
