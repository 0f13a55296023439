package packet

import (
	"io"
	"net"
	"strconv"
)

const readBufSize = 4096

// Reader reads packets from a stream through its own buffer, so that small packets cost few read
// calls. It never trusts a peer's length: a remaining length above the maximum packet size is
// refused before anything is allocated for it, and a large body is allocated as its bytes arrive,
// so a peer that claims 256 MiB and sends 10 bytes costs about 10 bytes. Bodies of small packets
// (up to 256 bytes) are carved from shared 4 KiB slabs, so a packet kept for long keeps its slab
// alive; copy what you keep from it if that matters. A Reader is not safe
// for concurrent use; a connection has one reading goroutine.
type Reader struct {
	r    io.Reader
	buf  []byte // buffered bytes: buf[off:end]
	off  int
	end  int
	max  uint32
	slab []byte // unused part of the current slab for small bodies
}

// Small packet bodies share slabs of slabSize bytes.
const (
	slabSize = 4096
	slabMax  = 256
)

// NewReader returns a Reader on r that refuses packets larger than maxPacketSize bytes (whole
// packet, fixed header included; 0 means the protocol maximum, 268,435,460).
func NewReader(r io.Reader, maxPacketSize uint32) *Reader {
	rd := &Reader{r: r, buf: make([]byte, readBufSize)}
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

// Buffered returns the number of bytes read from the stream but not yet consumed.
func (r *Reader) Buffered() int { return r.end - r.off }

// fill reads at least one more byte into the buffer.
func (r *Reader) fill() error {
	if r.off > 0 {
		copy(r.buf, r.buf[r.off:r.end])
		r.end -= r.off
		r.off = 0
	}
	for i := 0; i < 100; i++ {
		n, err := r.r.Read(r.buf[r.end:])
		r.end += n
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// ReadRaw reads the next packet's header byte and body without decoding it. The body is newly
// allocated and owned by the caller.
func (r *Reader) ReadRaw() (header byte, body []byte, err error) {
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
	if size := 1 + l + rl; uint64(size) > uint64(r.max) {
		return 0, nil, &Error{Type: Type(header >> 4), Reason: PacketTooLarge,
			Msg: "packet of " + strconv.Itoa(size) + " bytes exceeds the maximum packet size of " + strconv.FormatUint(uint64(r.max), 10)}
	}
	r.off += 1 + l
	// Body: what is buffered, then the rest straight from the stream, growing as it arrives.
	have := min(r.end-r.off, rl)
	const chunk = 64 << 10
	if rl <= slabMax {
		// Small bodies are carved from a shared slab: one allocation for many packets. Each
		// body is capped, and a slab is never reused, so every packet still owns its bytes.
		if len(r.slab) < rl {
			r.slab = make([]byte, slabSize)
		}
		body = r.slab[:have:rl]
		r.slab = r.slab[rl:]
	} else {
		body = make([]byte, have, min(rl, max(have, chunk)))
	}
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
// packet owns its memory: it stays valid after the next call.
func (r *Reader) ReadPacket(v Version) (Packet, error) {
	h, body, err := r.ReadRaw()
	if err != nil {
		return nil, err
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
		w.buf, err = pub.appendHead(w.buf[:0], v)
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
