package packet

import (
	"io"
	"net"
	"strconv"
)

// Reader reads packets from a stream through an adaptive buffer. The buffer starts small (256
// bytes), so an idle connection holds little memory; it doubles while reads fill it, up to 32
// KiB, so a busy connection costs few read calls; and it halves again after a run of small reads.
//
// A Reader never trusts a peer's length. A remaining length above the maximum packet size, or
// above the largest size a packet of its type can have (see MaxSize), is refused before anything
// is allocated for it. A body is allocated as its bytes arrive, in steps that at most double what
// has been received, so a peer that claims 256 MiB and sends 10 bytes costs about 10 bytes plus
// the first step (64 KiB at most).
//
// A Reader is not safe for concurrent use; a connection has one reading goroutine.
type Reader struct {
	r        io.Reader
	buf      []byte // buffered bytes: buf[off:end]
	off, end int
	max      uint32
	small    int // consecutive reads that used less than an eighth of the buffer

	// reuse: PUBLISH and PUBACK are decoded into pub and ack, which the next read overwrites,
	// and a PUBACK's body is read in place instead of copied. They are allocated on first use:
	// an idle connection does not carry them.
	reuse bool
	pub   *Publish
	ack   *Puback

	skipOversize bool // SetSkipOversize
}

// OversizePublish stands for a PUBLISH larger than the maximum packet size that a Reader with
// SetSkipOversize skipped: its bytes were read and dropped as they came, never held. It keeps
// what acknowledging it takes. It cannot be encoded.
type OversizePublish struct {
	QoS      QoS
	PacketID uint16 // 0 for QoS 0
	Size     int    // the whole packet's size, fixed header included
	Max      uint32 // the maximum packet size it exceeded
}

// Type returns PUBLISH.
func (p *OversizePublish) Type() Type { return PUBLISH }

// Append returns an error: a skipped PUBLISH has no body left to encode.
func (p *OversizePublish) Append(dst []byte, _ Version) ([]byte, error) {
	return dst, &Error{Type: PUBLISH, Reason: PacketTooLarge, Msg: "a skipped PUBLISH cannot be encoded"}
}

// SetSkipOversize makes ReadPacket skip a PUBLISH larger than the maximum packet size instead
// of failing: it reads the packet's topic length and packet identifier, drops every other
// byte as it arrives (memory follows the read buffer, not the claimed length) and returns an
// *OversizePublish. For a peer that cannot know the limit (MQTT 3.1.1 has no Maximum Packet
// Size), so that one large message does not end the connection. Other packets are unaffected.
func (r *Reader) SetSkipOversize(on bool) { r.skipOversize = on }

// skipPublish reads past the body (rl bytes) of an oversize PUBLISH with fixed header byte
// header, whose whole size is size.
func (r *Reader) skipPublish(header byte, rl, size int) (*OversizePublish, error) {
	qos := QoS(header >> 1 & 3)
	if qos > 2 {
		return nil, malformed(PUBLISH, "[MQTT-3.3.1-4]", "QoS 3 is not allowed")
	}
	b, err := r.take(2)
	if err != nil {
		return nil, err
	}
	tl := int(b[0])<<8 | int(b[1])
	need := 2 + tl
	if qos > 0 {
		need += 2
	}
	if need > rl {
		return nil, malformed(PUBLISH, "", "topic length "+strconv.Itoa(tl)+" runs past the remaining length "+strconv.Itoa(rl))
	}
	if err := r.discard(tl); err != nil {
		return nil, err
	}
	p := &OversizePublish{QoS: qos, Size: size, Max: r.max}
	if qos > 0 {
		b, err := r.take(2)
		if err != nil {
			return nil, err
		}
		p.PacketID = uint16(b[0])<<8 | uint16(b[1])
		if p.PacketID == 0 {
			return nil, malformed(PUBLISH, "[MQTT-2.2.1-3]", "packet identifier 0")
		}
	}
	return p, r.discard(rl - need)
}

// take returns the next n (at most minReadBuf) bytes, reading them when needed.
func (r *Reader) take(n int) ([]byte, error) {
	for r.end-r.off < n {
		if err := r.fillInPacket(); err != nil {
			return nil, err
		}
	}
	b := r.buf[r.off : r.off+n]
	r.off += n
	return b, nil
}

// discard drops the next n bytes, reading them through the buffer.
func (r *Reader) discard(n int) error {
	for n > 0 {
		if r.off == r.end {
			r.off, r.end = 0, 0
			if err := r.fillInPacket(); err != nil {
				return err
			}
		}
		k := min(n, r.end-r.off)
		r.off += k
		n -= k
	}
	return nil
}

// fillInPacket is fill inside a packet, where the end of the stream is an unexpected one.
func (r *Reader) fillInPacket() error {
	if err := r.fill(); err != io.EOF {
		return err
	}
	return io.ErrUnexpectedEOF
}

const (
	minReadBuf = 256
	maxReadBuf = 32 << 10
	// bodyStep is the first allocation for a body that is not yet buffered; each further step
	// at most doubles what has arrived.
	bodyStep = 64 << 10
)

// DefaultMaxPacketSize is the maximum packet size Fennec's client accepts and announces when none
// is configured: 1 MiB, eight times AWS IoT Core's 128 KiB message limit and well above what a
// device exchanges, while a broker that misbehaves can cost a connection at most about that
// much memory.
const DefaultMaxPacketSize = 1 << 20

// NewReader returns a Reader on r that refuses packets larger than maxPacketSize bytes (whole
// packet, fixed header included; 0 means the protocol maximum, 268,435,460).
func NewReader(r io.Reader, maxPacketSize uint32) *Reader {
	rd := &Reader{r: r, buf: make([]byte, minReadBuf)}
	rd.SetMaxPacketSize(maxPacketSize)
	return rd
}

// SetMaxPacketSize changes the maximum packet size (0: the protocol maximum).
func (r *Reader) SetMaxPacketSize(n uint32) {
	if n == 0 || n > MaxPacketSize {
		n = MaxPacketSize
	}
	r.max = n
}

// SetReuse makes ReadPacket decode PUBLISH and PUBACK packets into two packets the Reader owns
// and overwrites on the next call, saving an allocation per packet for a caller that keeps
// nothing of them but copies. Other packets are unaffected.
func (r *Reader) SetReuse(on bool) { r.reuse = on }

// Buffered returns the number of bytes read from the stream but not yet consumed.
func (r *Reader) Buffered() int { return r.end - r.off }

// MaxSize returns the largest size, fixed header included, that a well-formed packet of type t
// can have in version v, or 0 when only the maximum packet size bounds it (CONNECT, PUBLISH,
// SUBSCRIBE, SUBACK, UNSUBSCRIBE). For MQTT 3.1.1 these are exact (a PUBACK is 4 bytes). MQTT 5
// acknowledgements, CONNACK, DISCONNECT and AUTH may carry a Reason String and User Properties,
// which the specification does not bound: Fennec bounds them at 64 KiB + 16 bytes, room for a
// Reason String of 65,535 bytes.
func MaxSize(v Version, t Type) uint32 {
	switch t {
	case PINGREQ, PINGRESP:
		return 2
	case CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK:
		if v == V311 {
			return 4
		}
		if t == UNSUBACK {
			return 0 // one reason code per filter
		}
		return maxAckV5
	case DISCONNECT:
		if v == V311 {
			return 2
		}
		return maxAckV5
	case AUTH:
		if v == V5 {
			return maxAckV5
		}
		return 2
	}
	return 0
}

const maxAckV5 = 64<<10 + 16

// fill reads more bytes into the buffer, growing and shrinking it with the traffic.
func (r *Reader) fill() error {
	if r.off > 0 {
		copy(r.buf, r.buf[r.off:r.end])
		r.end -= r.off
		r.off = 0
	}
	if r.end == len(r.buf) {
		r.resize(2 * len(r.buf))
	}
	for i := 0; i < 100; i++ {
		n, err := r.r.Read(r.buf[r.end:])
		r.end += n
		if n > 0 {
			switch {
			case r.end == len(r.buf) && len(r.buf) < maxReadBuf:
				r.small = 0
				r.resize(2 * len(r.buf))
			case n < len(r.buf)/8 && len(r.buf) > minReadBuf:
				if r.small++; r.small >= 8 && r.end-r.off <= len(r.buf)/2 {
					r.small = 0
					r.resize(len(r.buf) / 2)
				}
			default:
				r.small = 0
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

func (r *Reader) resize(n int) {
	n = max(minReadBuf, min(n, maxReadBuf), r.end-r.off)
	nb := make([]byte, n)
	r.end = copy(nb, r.buf[r.off:r.end])
	r.off = 0
	r.buf = nb
}

// ReadRaw reads the next packet's header byte and body without decoding it. The body is newly
// allocated and owned by the caller. Only the maximum packet size bounds the body: ReadPacket
// also applies MaxSize for its version.
func (r *Reader) ReadRaw() (header byte, body []byte, err error) {
	return r.readRaw(0, false, nil)
}

// ReadRawAs is ReadRaw that also refuses a packet larger than MaxSize(v, its type), as
// ReadPacket does, before reading its body.
func (r *Reader) ReadRawAs(v Version) (header byte, body []byte, err error) {
	return r.readRaw(v, false, nil)
}

// readRaw reads a packet, refusing it when it is larger than MaxSize(v, type) (v 0: no type
// bound). With reuse, the body of a PUBACK that is already buffered is returned as a slice of
// the buffer, valid until the next read. With skipped set, a PUBLISH larger than the maximum
// packet size is skipped (skipPublish) and returned in *skipped, with no body.
func (r *Reader) readRaw(v Version, reuse bool, skipped **OversizePublish) (header byte, body []byte, err error) {
	// Fixed header: 1 byte type, 1-4 bytes remaining length.
	var rl, l int
	for {
		if r.end-r.off >= 2 {
			var st vbiStatus
			rl, l, st = parseVBI(r.buf[r.off+1 : r.end])
			if st == vbiOK {
				break
			}
			if st != vbiShort {
				return 0, nil, vbiError(Type(r.buf[r.off]>>4), st, "remaining length")
			}
		}
		if err := r.fill(); err != nil {
			if err == io.EOF && r.end > r.off {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, err
		}
	}
	header = r.buf[r.off]
	t := Type(header >> 4)
	size := 1 + l + rl
	if uint64(size) > uint64(r.max) {
		if skipped != nil && t == PUBLISH {
			r.off += 1 + l
			*skipped, err = r.skipPublish(header, rl, size)
			return header, nil, err
		}
		return 0, nil, &Error{Type: t, Reason: PacketTooLarge,
			Msg: "packet of " + strconv.Itoa(size) + " bytes exceeds the maximum packet size of " + strconv.FormatUint(uint64(r.max), 10)}
	}
	if v != 0 {
		if m := MaxSize(v, t); m != 0 && uint64(size) > uint64(m) {
			return 0, nil, &Error{Type: t, Reason: MalformedPacket,
				Msg: "remaining length " + strconv.Itoa(rl) + " is more than a " + t.String() + " can have in MQTT " + v.String() + " (" + strconv.FormatUint(uint64(m), 10) + " bytes in all)"}
		}
	}
	r.off += 1 + l
	have := min(r.end-r.off, rl)
	if reuse && t == PUBACK && have == rl {
		body = r.buf[r.off : r.off+rl : r.off+rl]
		r.off += rl
		return header, body, nil
	}
	// Body: what is buffered, then the rest straight from the stream, growing as it arrives.
	body = make([]byte, have, min(rl, max(have, bodyStep)))
	copy(body, r.buf[r.off:r.off+have])
	r.off += have
	if r.off == r.end {
		r.off, r.end = 0, 0
	}
	for len(body) < rl {
		if len(body) == cap(body) {
			nb := make([]byte, len(body), min(rl, 2*cap(body)))
			copy(nb, body)
			body = nb
		}
		n, err := r.r.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if err != nil && len(body) < rl {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, err
		}
	}
	return header, body, nil
}

// ReadPacket returns the next packet, decoded for v (a CONNECT is decoded whatever v is). The
// packet owns its memory and stays valid after the next call, except a PUBLISH or PUBACK read
// with SetReuse.
func (r *Reader) ReadPacket(v Version) (Packet, error) {
	var ov *OversizePublish
	var skipped **OversizePublish
	if r.skipOversize {
		skipped = &ov
	}
	h, body, err := r.readRaw(v, r.reuse, skipped)
	if err != nil {
		return nil, err
	}
	if ov != nil {
		return ov, nil
	}
	if r.reuse {
		switch Type(h >> 4) {
		case PUBLISH:
			if r.pub == nil {
				r.pub = new(Publish)
			} else {
				*r.pub = Publish{}
			}
			if err := r.pub.DecodeBody(v, h, body); err != nil {
				return nil, err
			}
			return r.pub, nil
		case PUBACK:
			// Decoded at once, and its strings are copies: the body may be the buffer.
			if r.ack == nil {
				r.ack = new(Puback)
			} else {
				*r.ack = Puback{}
			}
			if err := r.ack.DecodeBody(v, h, body); err != nil {
				return nil, err
			}
			return r.ack, nil
		}
	}
	return Decode(v, h, body)
}

// Writer writes packets to a stream with one Write per packet. PUBLISH payloads are not copied
// when the stream can write several buffers in one call (TCP and Unix connections: writev through
// net.Buffers); on other streams (TLS, pipes) the packet is assembled in a reused buffer so it
// still goes out as one Write, e.g. one TLS record. A Writer is not safe for concurrent use; a
// connection has one writing goroutine.
type Writer struct {
	w      io.Writer
	buf    []byte
	vector bool
	bufs   [2][]byte
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer {
	wr := &Writer{w: w}
	switch w.(type) {
	case *net.TCPConn, *net.UnixConn:
		wr.vector = true
	}
	return wr
}

// vectorMin is the payload size from which a vectored write beats a copy.
const vectorMin = 1024

// WritePacket encodes p for v and writes it with one Write (or one writev).
func (w *Writer) WritePacket(p Packet, v Version) error {
	var err error
	if pub, ok := p.(*Publish); ok && w.vector && len(pub.Payload) >= vectorMin {
		w.buf, err = pub.AppendHead(w.buf[:0], v)
		if err != nil {
			return err
		}
		w.bufs[0], w.bufs[1] = w.buf, pub.Payload
		bufs := net.Buffers(w.bufs[:])
		_, err = bufs.WriteTo(w.w)
		w.bufs[1] = nil
		return err
	}
	w.buf, err = p.Append(w.buf[:0], v)
	if err != nil {
		return err
	}
	_, err = w.w.Write(w.buf)
	w.shrink()
	return err
}

// WritePackets encodes all packets for v and writes them with a single Write. Nothing is written
// when one of them fails to encode.
func (w *Writer) WritePackets(v Version, ps ...Packet) error {
	b := w.buf[:0]
	for _, p := range ps {
		var err error
		b, err = p.Append(b, v)
		if err != nil {
			w.buf = b[:0]
			return err
		}
	}
	w.buf = b
	_, err := w.w.Write(b)
	w.shrink()
	return err
}

// shrink drops a buffer grown by one very large packet.
func (w *Writer) shrink() {
	if cap(w.buf) > 1<<20 {
		w.buf = nil
	}
}
