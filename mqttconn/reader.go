package mqttconn

import (
	"fmt"
	"io"

	"github.com/fennec-mqtt/fennec/packet"
)

// frameReader reads MQTT packets through an adaptive buffer: it starts small, so an idle
// connection holds little memory (an idle client is the common case on a device or in a fleet),
// doubles when reads fill it (a busy connection gets few read syscalls), and shrinks again after
// a run of small reads. It never trusts the peer's remaining length: a packet above max is
// refused before anything is allocated for it.
type frameReader struct {
	r        io.Reader
	buf      []byte
	off, end int
	max      uint32
	small    int // consecutive reads that used less than an eighth of the buffer

	// reuse: PUBLISH and PUBACK are decoded into pub and ack, which the next read overwrites
	// (Options.ReusePackets), and a PUBACK's body is read in place instead of copied. They are
	// allocated on first use: an idle connection does not carry them.
	reuse bool
	pub   *packet.Publish
	ack   *packet.Puback
}

const (
	minReadBuf = 256
	maxReadBuf = 32 << 10
)

func newFrameReader(r io.Reader, max uint32) *frameReader {
	if max == 0 || max > packet.MaxPacketSize {
		max = packet.MaxPacketSize
	}
	return &frameReader{r: r, buf: make([]byte, minReadBuf), max: max}
}

func (f *frameReader) fill() error {
	if f.off > 0 {
		copy(f.buf, f.buf[f.off:f.end])
		f.end -= f.off
		f.off = 0
	}
	if f.end == len(f.buf) {
		f.resize(2 * len(f.buf))
	}
	for i := 0; i < 100; i++ {
		n, err := f.r.Read(f.buf[f.end:])
		f.end += n
		if n > 0 {
			switch {
			case f.end == len(f.buf) && len(f.buf) < maxReadBuf:
				f.small = 0
				f.resize(2 * len(f.buf))
			case n < len(f.buf)/8 && len(f.buf) > minReadBuf:
				if f.small++; f.small >= 8 && f.end-f.off <= len(f.buf)/2 {
					f.small = 0
					f.resize(len(f.buf) / 2)
				}
			default:
				f.small = 0
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

func (f *frameReader) resize(n int) {
	n = max(minReadBuf, min(n, maxReadBuf), f.end-f.off)
	nb := make([]byte, n)
	f.end = copy(nb, f.buf[f.off:f.end])
	f.off = 0
	f.buf = nb
}

// next returns the next packet's first byte and its body (owned by the caller).
func (f *frameReader) next() (byte, []byte, error) {
	var rl, l int
	for {
		if f.end-f.off >= 2 {
			rl, l = 0, 0
			complete := false
			for i := 0; i < 4 && f.off+1+i < f.end; i++ {
				b := f.buf[f.off+1+i]
				rl |= int(b&0x7f) << (7 * i)
				if b&0x80 == 0 {
					l, complete = i+1, true
					break
				}
				if i == 3 {
					return 0, nil, &packet.Error{Type: packet.Type(f.buf[f.off] >> 4), Reason: packet.MalformedPacket,
						Msg: "remaining length longer than 4 bytes [MQTT-1.5.5-1]"}
				}
			}
			if complete {
				break
			}
		}
		if err := f.fill(); err != nil {
			if err == io.EOF && f.end > f.off {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, err
		}
	}
	header := f.buf[f.off]
	if size := 1 + l + rl; uint64(size) > uint64(f.max) {
		return 0, nil, &packet.Error{Type: packet.Type(header >> 4), Reason: packet.PacketTooLarge,
			Msg: fmt.Sprintf("packet of %d bytes exceeds the maximum packet size of %d", size, f.max)}
	}
	f.off += 1 + l
	if f.reuse && packet.Type(header>>4) == packet.PUBACK && f.end-f.off >= rl {
		// Decoded at once into f.ack, whose strings are copies: the buffer may be used.
		body := f.buf[f.off : f.off+rl : f.off+rl]
		f.off += rl
		return header, body, nil
	}
	body := make([]byte, rl)
	n := copy(body, f.buf[f.off:f.end])
	f.off += n
	if f.off == f.end {
		f.off, f.end = 0, 0
	}
	if n < rl {
		if _, err := io.ReadFull(f.r, body[n:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, err
		}
	}
	return header, body, nil
}

// readPacket reads and decodes the next packet.
func (f *frameReader) readPacket(v packet.Version) (packet.Packet, error) {
	h, body, err := f.next()
	if err != nil {
		return nil, err
	}
	if f.reuse {
		switch packet.Type(h >> 4) {
		case packet.PUBLISH:
			if f.pub == nil {
				f.pub = new(packet.Publish)
			} else {
				*f.pub = packet.Publish{}
			}
			if err := f.pub.DecodeBody(v, h, body); err != nil {
				return nil, err
			}
			return f.pub, nil
		case packet.PUBACK:
			if f.ack == nil {
				f.ack = new(packet.Puback)
			} else {
				*f.ack = packet.Puback{}
			}
			if err := f.ack.DecodeBody(v, h, body); err != nil {
				return nil, err
			}
			return f.ack, nil
		}
	}
	return packet.Decode(v, h, body)
}
