package packet

import (
	"encoding/binary"
	"unicode/utf8"
)

// MaxRemainingLength is the largest remaining length a variable byte integer can carry.
const MaxRemainingLength = 268435455

// MaxPacketSize is the largest packet MQTT allows: a 1-byte header, a 4-byte remaining length
// and 268,435,455 bytes.
const MaxPacketSize = 1 + 4 + MaxRemainingLength

func vbiLen(n int) int {
	switch {
	case n < 128:
		return 1
	case n < 16384:
		return 2
	case n < 2097152:
		return 3
	}
	return 4
}

// AppendVarInt appends n (0 to MaxRemainingLength) as a variable byte integer, the encoding of
// the remaining length and of some MQTT 5 properties. It is the one encoder Fennec has.
func AppendVarInt(b []byte, n int) []byte { return appendVBI(b, n) }

func appendVBI(b []byte, n int) []byte {
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// vbiStatus is the outcome of parsing a variable byte integer from a possibly short buffer.
type vbiStatus int

const (
	vbiOK       vbiStatus = iota
	vbiShort              // more bytes are needed
	vbiTooLong            // more than 4 bytes
	vbiNonMinim           // not the shortest encoding [MQTT-1.5.5-1]
)

// parseVBI parses a variable byte integer at the start of b.
func parseVBI(b []byte) (val, n int, st vbiStatus) {
	mult := 1
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, vbiShort
		}
		c := b[i]
		val += int(c&0x7f) * mult
		if c&0x80 == 0 {
			if i > 0 && c == 0 {
				return 0, 0, vbiNonMinim
			}
			return val, i + 1, vbiOK
		}
		mult <<= 7
	}
	return 0, 0, vbiTooLong
}

func vbiError(t Type, st vbiStatus, what string) *Error {
	switch st {
	case vbiTooLong:
		return malformed(t, "[MQTT-1.5.5-1]", what+" is a variable byte integer longer than 4 bytes")
	case vbiNonMinim:
		return malformed(t, "[MQTT-1.5.5-1]", what+" is not encoded in the minimum number of bytes")
	}
	return malformed(t, "", what+" is truncated")
}

func appendU16(b []byte, n uint16) []byte { return append(b, byte(n>>8), byte(n)) }
func appendU32(b []byte, n uint32) []byte {
	return append(b, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendString(b []byte, s string) []byte {
	b = append(b, byte(len(s)>>8), byte(len(s)))
	return append(b, s...)
}

func appendBinary(b []byte, s []byte) []byte {
	b = append(b, byte(len(s)>>8), byte(len(s)))
	return append(b, s...)
}

// checkUTF8 applies the rules for UTF-8 encoded strings: well-formed (no surrogates, no overlong
// forms) [MQTT-1.5.3-1]/[MQTT-1.5.4-1], no U+0000 [MQTT-1.5.3-2]/[MQTT-1.5.4-2], at most 65,535
// bytes.
func checkUTF8(t Type, v Version, what, s string) *Error {
	if len(s) > 65535 {
		return malformed(t, "", what+" is longer than 65,535 bytes")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 {
			return malformed(t, rule(v, "[MQTT-1.5.3-2]", "[MQTT-1.5.4-2]"), what+" contains U+0000")
		}
		if c >= utf8.RuneSelf {
			if !utf8.ValidString(s[i:]) {
				return malformed(t, rule(v, "[MQTT-1.5.3-1]", "[MQTT-1.5.4-1]"), what+" is not well-formed UTF-8")
			}
			// The rest is valid UTF-8; it may still hold a NUL byte.
			for j := i; j < len(s); j++ {
				if s[j] == 0 {
					return malformed(t, rule(v, "[MQTT-1.5.3-2]", "[MQTT-1.5.4-2]"), what+" contains U+0000")
				}
			}
			return nil
		}
	}
	return nil
}

func checkBinary(t Type, what string, b []byte) *Error {
	if len(b) > 65535 {
		return malformed(t, "", what+" is longer than 65,535 bytes")
	}
	return nil
}

// reader walks a packet body. All methods leave r.err set on the first failure and return zero
// values from then on.
type reader struct {
	b   []byte
	off int
	t   Type
	v   Version
	err *Error

	// arena, when set, is a string copy of b[arenaOff:]: strings read from that region are
	// substrings of it, so a packet with many strings costs one allocation for all of them.
	arena    string
	arenaOff int
}

// useArena copies the rest of the body into one string that later str calls slice from.
func (r *reader) useArena() {
	if r.err == nil && r.off < len(r.b) {
		r.arena, r.arenaOff = string(r.b[r.off:]), r.off
	}
}

func (r *reader) short(what string) {
	if r.err == nil {
		r.err = malformed(r.t, "", what+" runs past the end of the packet (remaining length too short)")
	}
}

func (r *reader) rest() int { return len(r.b) - r.off }

func (r *reader) u8(what string) byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.short(what)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) u16(what string) uint16 {
	if r.err != nil {
		return 0
	}
	if r.off+2 > len(r.b) {
		r.short(what)
		return 0
	}
	n := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return n
}

func (r *reader) u32(what string) uint32 {
	if r.err != nil {
		return 0
	}
	if r.off+4 > len(r.b) {
		r.short(what)
		return 0
	}
	n := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return n
}

func (r *reader) vbi(what string) int {
	if r.err != nil {
		return 0
	}
	n, l, st := parseVBI(r.b[r.off:])
	if st != vbiOK {
		r.err = vbiError(r.t, st, what)
		return 0
	}
	r.off += l
	return n
}

// binary returns a length-prefixed byte slice aliasing the body, capped so that appending to it
// cannot overwrite the bytes after it.
func (r *reader) binary(what string) []byte {
	n := int(r.u16(what + " length"))
	if r.err != nil {
		return nil
	}
	if r.off+n > len(r.b) {
		r.short(what)
		return nil
	}
	if n == 0 {
		return nil
	}
	s := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return s
}

// str returns a length-prefixed UTF-8 string, checked [MQTT-1.5.3-1] [MQTT-1.5.3-2].
func (r *reader) str(what string) string {
	b := r.binary(what)
	if r.err != nil {
		return ""
	}
	if len(b) == 0 {
		return ""
	}
	var s string
	if r.arena != "" && r.off-len(b) >= r.arenaOff {
		start := r.off - len(b) - r.arenaOff
		s = r.arena[start : start+len(b)]
	} else {
		s = string(b)
	}
	if err := checkUTF8(r.t, r.v, what, s); err != nil {
		r.err = err
		return ""
	}
	return s
}

func (r *reader) end() {
	if r.err == nil && r.off != len(r.b) {
		r.err = malformed(r.t, "", "remaining length is longer than the packet's content")
	}
}
