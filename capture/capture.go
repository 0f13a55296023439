package capture

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// MaxHeld is the default bound on bytes held back while a handshake's secrets are awaited.
// Past it, held packets are written anyway (Stats.Undecryptable counts the connections whose
// handshake may then not decrypt).
const MaxHeld = 8 << 20

// maxSegment keeps every synthesised IP packet below the 64 KiB an IPv4 length can say.
const maxSegment = 65000

// Stats counts what a Recorder wrote.
type Stats struct {
	Connections   int   // connections recorded
	Packets       int   // TCP segments written (SYN, data, FIN and RST included)
	Bytes         int64 // payload bytes written
	Secrets       int   // key log lines written in Decryption Secrets Blocks
	Undecryptable int   // connections whose packets were written before their secrets (MaxHeld)
}

// Recorder writes connections into one pcapng stream. Its methods are safe for concurrent use.
type Recorder struct {
	// MaxHeld bounds the bytes held back for secrets; 0 means MaxHeld. Set it before use.
	MaxHeld int

	mu      sync.Mutex
	w       *pcapgo.NgWriter
	err     error
	closed  bool
	held    []*frame
	heldN   int
	secrets map[[32]byte]uint8 // client random → labels seen (bits below)
	line    []byte             // partial key log line
	stats   Stats
	nextISN uint32
}

const (
	secTLS12 = 1 << iota
	secClientTraffic
	secServerTraffic
)

// frame is one queued segment, or the place of a write still in progress (pending): the
// bytes a write hands the socket precede, in the file, whatever is read while it runs, so an
// answer never appears before its question.
type frame struct {
	c       *conn
	ts      time.Time
	data    []byte
	pending bool
	seq     uint32 // pending: the sequence number the write's bytes start at
	ack     uint32 // pending: the acknowledgement its segments carry
	dropped bool   // pending: removed from the queue (bound reached or capture closed)
}

// New starts a pcapng stream on w: the section header and one raw-IP interface are written
// at once.
func New(w io.Writer) (*Recorder, error) {
	nw, err := pcapgo.NewNgWriterInterface(w, pcapgo.NgInterface{
		Name:                "fennec",
		Description:         "connections as the Fennec client saw them",
		LinkType:            layers.LinkTypeRaw,
		TimestampResolution: 9,
	}, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "fennec"}})
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	return &Recorder{w: nw, secrets: map[[32]byte]uint8{}, nextISN: 0x10000000}, nil
}

// Dial wraps a dial function (nil: a net.Dialer) so that every connection it opens is
// recorded. Its shape is that of fennec.Config.Dial.
func (r *Recorder) Dial(next func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if next == nil {
		var d net.Dialer
		next = d.DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return r.Wrap(nc), nil
	}
}

// Wrap records an open connection from now on; the capture opens it with a SYN exchange.
func (r *Recorder) Wrap(nc net.Conn) net.Conn {
	c := &conn{Conn: nc, r: r}
	c.local, c.lport = endpoint(nc.LocalAddr(), net.IPv4(127, 0, 0, 1))
	c.remote, c.rport = endpoint(nc.RemoteAddr(), net.IPv4(127, 0, 0, 2))
	if (c.local.To4() == nil) != (c.remote.To4() == nil) {
		c.local, c.remote = c.local.To16(), c.remote.To16()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c.seqL, c.seqR = r.nextISN, r.nextISN+0x01000000
	r.nextISN += 0x02000000
	r.stats.Connections++
	now := time.Now()
	r.segment(c, now, true, flagSYN, nil)
	r.segment(c, now, false, flagSYN|flagACK, nil)
	r.segment(c, now, true, flagACK, nil)
	r.flush()
	return c
}

// KeyLog is the writer for tls.Config.KeyLogWriter: each line goes into a Decryption Secrets
// Block, and releases the packets of the handshake it completes.
func (r *Recorder) KeyLog() io.Writer { return keyLog{r} }

type keyLog struct{ r *Recorder }

func (k keyLog) Write(p []byte) (int, error) {
	r := k.r
	r.mu.Lock()
	defer r.mu.Unlock()
	r.line = append(r.line, p...)
	for {
		i := bytes.IndexByte(r.line, '\n')
		if i < 0 {
			break
		}
		line := r.line[:i+1]
		r.secret(line)
		r.line = r.line[i+1:]
	}
	if len(r.line) > 4096 { // not a key log
		r.line = r.line[:0]
	}
	r.flush()
	return len(p), nil
}

// secret writes one key log line and notes which handshake it belongs to. Called with r.mu held.
func (r *Recorder) secret(line []byte) {
	if r.err != nil || r.closed {
		return
	}
	if r.err = r.w.WriteDecryptionSecretsBlock(pcapgo.DSB_SECRETS_TYPE_TLS, bytes.Clone(line)); r.err != nil {
		return
	}
	r.stats.Secrets++
	f := bytes.Fields(line)
	if len(f) != 3 {
		return
	}
	var random [32]byte
	if n, err := hex.Decode(random[:], f[1]); err != nil || n != 32 {
		return
	}
	switch string(f[0]) {
	case "CLIENT_RANDOM":
		r.secrets[random] |= secTLS12
	case "CLIENT_TRAFFIC_SECRET_0":
		r.secrets[random] |= secClientTraffic
	case "SERVER_TRAFFIC_SECRET_0":
		r.secrets[random] |= secServerTraffic
	}
}

// Stats returns what has been written so far.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Close writes every held packet and flushes the stream; connections still open are not
// recorded further. It does not close the underlying writer.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return r.err
	}
	for _, f := range r.held {
		f.c.settled = true
		if f.pending { // a write still blocked: its bytes are not recorded
			f.dropped = true
		}
	}
	r.flush()
	r.closed = true
	if r.err == nil {
		r.err = r.w.Flush()
	}
	if r.err != nil {
		return fmt.Errorf("capture: %w", r.err)
	}
	return nil
}

const (
	flagFIN = 1 << iota
	flagSYN
	flagRST
	flagPSH
	flagACK
)

// segment builds one TCP segment of c and queues it. Called with r.mu held.
func (r *Recorder) segment(c *conn, ts time.Time, out bool, flags int, payload []byte) {
	if r.closed || r.err != nil {
		return
	}
	seq, ack := &c.seqL, c.seqR
	if !out {
		seq, ack = &c.seqR, c.ackedL // a segment read acknowledges the bytes written before it
	}
	data := r.build(c, out, flags, *seq, ack, payload)
	if data == nil {
		return
	}
	*seq += uint32(len(payload))
	if flags&(flagSYN|flagFIN) != 0 {
		*seq++
	}
	if out && c.writing == 0 {
		c.ackedL = c.seqL
	}
	r.held = append(r.held, &frame{c: c, ts: ts, data: data})
	r.heldN += len(data)
}

// build serialises one TCP segment of c. Called with r.mu held.
func (r *Recorder) build(c *conn, out bool, flags int, seq, ack uint32, payload []byte) []byte {
	src, dst, sport, dport := c.local, c.remote, c.lport, c.rport
	if !out {
		src, dst, sport, dport = c.remote, c.local, c.rport, c.lport
	}
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport),
		Seq: seq, Ack: ack, Window: 65535,
		SYN: flags&flagSYN != 0, FIN: flags&flagFIN != 0, RST: flags&flagRST != 0,
		PSH: flags&flagPSH != 0, ACK: flags&flagACK != 0,
	}
	if !tcp.ACK {
		tcp.Ack = 0
	}
	var netLayer gopacket.SerializableLayer
	if src.To4() != nil {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP, SrcIP: src.To4(), DstIP: dst.To4()}
		tcp.SetNetworkLayerForChecksum(ip)
		netLayer = ip
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src, DstIP: dst}
		tcp.SetNetworkLayerForChecksum(ip)
		netLayer = ip
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, netLayer, tcp, gopacket.Payload(payload)); err != nil {
		r.err = err
		return nil
	}
	r.stats.Bytes += int64(len(payload))
	return bytes.Clone(buf.Bytes())
}

// flush writes held frames in capture order up to the first one whose connection still
// awaits its secrets; past the bound it writes them all. Called with r.mu held.
func (r *Recorder) flush() {
	max := r.MaxHeld
	if max <= 0 {
		max = MaxHeld
	}
	i := 0
	for ; i < len(r.held) && r.err == nil; i++ {
		f := r.held[i]
		if f.pending {
			if !f.dropped && r.heldN <= max {
				break
			}
			// A write blocked while the bound filled: it gives up its place, and its
			// bytes are queued when it returns.
			f.dropped = true
			continue
		}
		if !f.c.ready() {
			if r.heldN <= max {
				break
			}
			f.c.settled = true
			r.stats.Undecryptable++
		}
		r.err = r.w.WritePacket(gopacket.CaptureInfo{Timestamp: f.ts, CaptureLength: len(f.data), Length: len(f.data)}, f.data)
		r.heldN -= len(f.data)
		r.stats.Packets++
	}
	r.held = append(r.held[:0], r.held[i:]...)
	if len(r.held) == 0 {
		r.held = nil
	}
}

// conn records one connection. Its fields below net.Conn are guarded by r.mu.
type conn struct {
	net.Conn
	r *Recorder

	local, remote net.IP
	lport, rport  int
	seqL, seqR    uint32 // next sequence number each way (seqL counts writes in progress)
	ackedL        uint32 // seqL without the writes in progress: what segments read acknowledge
	writing       int    // writes reserved and not yet returned
	wmu           sync.Mutex
	hello         bool // the first bytes the client wrote were looked at
	tls           bool
	random        [32]byte
	settled       bool
	finL, finR    bool
	finHeld       bool // closed during a write: the FIN is recorded when the write returns
}

// ready reports whether c's packets may be written: its secrets are in, it is not TLS, or it
// is over. Called with r.mu held.
func (c *conn) ready() bool {
	if c.settled || !c.hello {
		// Before the client's first write nothing secret has flowed.
		return true
	}
	if !c.tls {
		return true
	}
	s := c.r.secrets[c.random]
	if s&secTLS12 != 0 || s&(secClientTraffic|secServerTraffic) == secClientTraffic|secServerTraffic {
		c.settled = true
	}
	return c.settled
}

// Write takes the bytes' place in the capture before handing them to the socket: what the
// peer answers, read by another goroutine before this write returns, comes after them.
func (c *conn) Write(b []byte) (int, error) {
	c.wmu.Lock() // one write at a time, so that places and sequence numbers agree
	defer c.wmu.Unlock()
	f := c.reserve(b)
	n, err := c.Conn.Write(b)
	c.written(f, b[:n])
	return n, err
}

// reserve queues the place of a write of b, or returns nil if the capture records no more of
// this direction.
func (c *conn) reserve(b []byte) *frame {
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if !c.hello && len(b) > 0 {
		c.hello = true
		// A TLS record of type handshake carrying a ClientHello: its random names the
		// key log lines of this connection.
		if len(b) >= 43 && b[0] == 0x16 && b[5] == 0x01 {
			c.tls = true
			copy(c.random[:], b[11:43])
		}
	}
	if c.finL || r.closed || r.err != nil || len(b) == 0 {
		return nil
	}
	f := &frame{c: c, ts: time.Now(), pending: true, seq: c.seqL, ack: c.seqR}
	c.seqL += uint32(len(b))
	c.writing++
	r.held = append(r.held, f)
	return f
}

// written fills a reserved place with the n bytes the socket took. A short write (the
// connection failed) leaves a gap in the sequence numbers where the rest would have been, as
// a capture that missed a segment shows.
func (c *conn) written(f *frame, b []byte) {
	if f == nil {
		return
	}
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	c.writing--
	if r.closed || r.err != nil {
		return
	}
	var segs [][]byte
	seq, b0 := f.seq, b
	for len(b) > 0 {
		n := min(len(b), maxSegment)
		data := r.build(c, true, flagPSH|flagACK, seq, f.ack, b[:n])
		if data == nil {
			return
		}
		segs = append(segs, data)
		seq += uint32(n)
		b = b[n:]
	}
	// A write cut short (the connection closed under it) used fewer sequence numbers than it
	// reserved; writes are one at a time, so none was reserved after it.
	c.seqL = f.seq + uint32(len(b0))
	c.ackedL = c.seqL
	frames := make([]*frame, len(segs))
	for i, d := range segs {
		frames[i] = &frame{c: c, ts: f.ts, data: d}
		r.heldN += len(d)
	}
	if f.dropped {
		r.held = append(r.held, frames...)
	} else if i := slices.Index(r.held, f); i >= 0 {
		r.held = slices.Replace(r.held, i, i+1, frames...)
	}
	if c.finHeld && c.writing == 0 {
		c.finHeld = false
		r.segment(c, time.Now(), true, flagFIN|flagACK, nil)
	}
	r.flush()
}

func (c *conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.read(b[:n])
	}
	if err != nil {
		c.end(false, err)
	}
	return n, err
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.end(true, nil)
	return err
}

// read records bytes the client read.
func (c *conn) read(b []byte) {
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.finR {
		return
	}
	now := time.Now()
	for len(b) > 0 {
		n := min(len(b), maxSegment)
		r.segment(c, now, false, flagPSH|flagACK, b[:n])
		b = b[n:]
	}
	r.flush()
}

// end records the close the client saw: its own FIN on Close, the peer's FIN on EOF, the
// peer's RST on a reset.
func (c *conn) end(local bool, err error) {
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	switch {
	case local && !c.finL:
		c.finL = true
		if c.writing > 0 {
			// A write is in progress: its bytes, as many as it writes, go before the FIN,
			// which written records after them.
			c.finHeld = true
			c.settled = true
			r.flush()
			return
		}
		r.segment(c, now, true, flagFIN|flagACK, nil)
	case !local && !c.finR && errors.Is(err, io.EOF):
		c.finR = true
		r.segment(c, now, false, flagFIN|flagACK, nil)
	case !local && !c.finR && errors.Is(err, syscall.ECONNRESET):
		c.finR, c.finL = true, true
		r.segment(c, now, false, flagRST, nil)
	default:
		return
	}
	if c.finL || c.finR {
		c.settled = true
	}
	r.flush()
}

func endpoint(a net.Addr, fallback net.IP) (net.IP, int) {
	if ta, ok := a.(*net.TCPAddr); ok && ta.IP != nil {
		if ip4 := ta.IP.To4(); ip4 != nil {
			return ip4, ta.Port
		}
		return ta.IP, ta.Port
	}
	return fallback.To4(), 0
}
