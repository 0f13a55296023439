package packet

import "strconv"

// decoder is implemented by every packet type.
type decoder interface {
	Packet
	decode(v Version, flags byte, body []byte) *Error
}

// New returns a new zero packet of type t, or nil for an unknown type.
func New(t Type) Packet {
	switch t {
	case CONNECT:
		return new(Connect)
	case CONNACK:
		return new(Connack)
	case PUBLISH:
		return new(Publish)
	case PUBACK:
		return new(Puback)
	case PUBREC:
		return new(Pubrec)
	case PUBREL:
		return new(Pubrel)
	case PUBCOMP:
		return new(Pubcomp)
	case SUBSCRIBE:
		return new(Subscribe)
	case SUBACK:
		return new(Suback)
	case UNSUBSCRIBE:
		return new(Unsubscribe)
	case UNSUBACK:
		return new(Unsuback)
	case PINGREQ:
		return new(Pingreq)
	case PINGRESP:
		return new(Pingresp)
	case DISCONNECT:
		return new(Disconnect)
	case AUTH:
		return new(Auth)
	}
	return nil
}

// checkHeader applies the fixed-header rules: a known type, and the flag bits the spec fixes
// for it [MQTT-2.2.2-1] [MQTT-2.2.2-2] (MQTT 5: [MQTT-2.1.3-1]).
func checkHeader(v Version, header byte) *Error {
	t := Type(header >> 4)
	flags := header & 0x0f
	if t == 0 {
		return malformed(0, "", "reserved packet type 0")
	}
	if t != CONNECT && !v.Valid() {
		return badVersion(t, v)
	}
	if t == AUTH && v == V311 {
		return malformed(t, "", "AUTH does not exist in MQTT 3.1.1")
	}
	switch t {
	case PUBLISH:
		return nil
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		if flags != 0x02 {
			r := map[Type]string{PUBREL: "[MQTT-3.6.1-1]", SUBSCRIBE: "[MQTT-3.8.1-1]", UNSUBSCRIBE: "[MQTT-3.10.1-1]"}[t]
			return malformed(t, r, "fixed header flags must be 0010, not "+strconv.FormatUint(uint64(flags), 2))
		}
	default:
		if flags != 0 {
			return malformed(t, rule(v, "[MQTT-2.2.2-1]", "[MQTT-2.1.3-1]"), "reserved fixed header flags are set")
		}
	}
	return nil
}

// Decode decodes one packet from its first byte (type and flags) and its body (everything after
// the remaining length). Byte slices in the result (payloads, binary properties, passwords) alias
// body; strings are copies. A CONNECT is decoded whatever v is (its version comes from the
// packet). Errors are *Error.
func Decode(v Version, header byte, body []byte) (Packet, error) {
	if err := checkHeader(v, header); err != nil {
		return nil, err
	}
	p := New(Type(header >> 4)).(decoder)
	if err := p.decode(v, header&0x0f, body); err != nil {
		return nil, err
	}
	return p, nil
}

// decodeInto is the shared body of the DecodeBody methods.
func decodeInto(p decoder, v Version, header byte, body []byte) error {
	if t := Type(header >> 4); t != p.Type() {
		return malformed(t, "", "is not a "+p.Type().String())
	}
	if err := checkHeader(v, header); err != nil {
		return err
	}
	if err := p.decode(v, header&0x0f, body); err != nil {
		return err
	}
	return nil
}

// DecodeBody decodes a PUBLISH into p, reusing p (no allocation but the topic string). The
// arguments are those of Decode; the payload aliases body.
func (p *Publish) DecodeBody(v Version, header byte, body []byte) error {
	return decodeInto(p, v, header, body)
}

// DecodeBody decodes a CONNECT into c (see Decode).
func (c *Connect) DecodeBody(v Version, header byte, body []byte) error {
	return decodeInto(c, v, header, body)
}

// DecodeBody decodes a CONNACK into c (see Decode).
func (c *Connack) DecodeBody(v Version, header byte, body []byte) error {
	return decodeInto(c, v, header, body)
}

// DecodeBody decodes a PUBACK into p (see Decode).
func (p *Puback) DecodeBody(v Version, header byte, body []byte) error {
	return decodeInto(p, v, header, body)
}

// DecodeBody decodes a SUBSCRIBE into p (see Decode).
func (p *Subscribe) DecodeBody(v Version, header byte, body []byte) error {
	return decodeInto(p, v, header, body)
}

// Split splits one whole encoded packet into its header byte and body, checking the remaining
// length. It returns the number of bytes the packet occupies in b.
func Split(b []byte) (header byte, body []byte, n int, err error) {
	if len(b) < 2 {
		return 0, nil, 0, malformed(0, "", "packet is shorter than 2 bytes")
	}
	rl, l, st := parseVBI(b[1:])
	if st != vbiOK {
		return 0, nil, 0, vbiError(Type(b[0]>>4), st, "remaining length")
	}
	if 1+l+rl > len(b) {
		return 0, nil, 0, malformed(Type(b[0]>>4), "", "remaining length "+strconv.Itoa(rl)+" runs past the end of the data")
	}
	return b[0], b[1+l : 1+l+rl], 1 + l + rl, nil
}

// Unmarshal decodes one whole encoded packet (fixed header included) that fills b exactly.
func Unmarshal(v Version, b []byte) (Packet, error) {
	h, body, n, err := Split(b)
	if err != nil {
		return nil, err
	}
	if n != len(b) {
		return nil, malformed(Type(h>>4), "", "remaining length is shorter than the data")
	}
	return Decode(v, h, body)
}
