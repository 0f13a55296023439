package benchmarks

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fennec-mqtt/fennec/packet"
)

// Raw is not a client library: it is the smallest MQTT 3.1.1 client that can take part in the
// measurements, to show what this broker on this machine allows for QoS 1, round trips and
// sequential connects (a dial, the TLS handshake, one CONNECT written whole, the CONNACK). It
// pre-encodes PUBLISH packets and writes them in 256 KiB chunks, reads through a 64 KiB buffer,
// batches its PUBACKs, and has no session, reconnect, keepalive or flow control. Its figures are
// a reference for the targets, not a competitor (and for QoS 0 not an upper bound).
//
// With Rate set, the raw client is paced: it writes its pre-encoded packets at Rate messages
// per second, in a chunk per millisecond, instead of flooding. The limit row of the comparison
// is the best received rate over a sweep of such rates: an unpaced flood costs a
// single-threaded broker more CPU per message and is not the limit.
//
// With Window set, at most Window QoS 1 publishes are unacknowledged at once: a pipelined
// stream with the window of a broker's in-flight limit, reading PUBACKs as they come.
type Raw struct {
	Rate   float64
	Window int
}

func (r Raw) Name() string {
	if r.Rate > 0 {
		return fmt.Sprintf("reference: raw packets paced at %.0f msg/s", r.Rate)
	}
	if r.Window > 0 {
		return fmt.Sprintf("reference: raw packets, %d in flight", r.Window)
	}
	return "reference: raw pre-encoded packets"
}

func (r Raw) Short() string {
	switch {
	case r.Rate > 0:
		return fmt.Sprintf("raw@%.0f", r.Rate)
	case r.Window > 0:
		return fmt.Sprintf("raw-window%d", r.Window)
	}
	return "raw"
}

type rawConn struct {
	rate   float64 // messages per second; 0: unpaced
	window int     // QoS 1 publishes unacknowledged at most; 0: up to the packet IDs
	// maxOut is the most QoS 1 publishes that were written and not yet acknowledged (an upper
	// estimate: acknowledgements read after the count are not subtracted)
	maxOut  int64
	nc      net.Conn
	wmu     sync.Mutex
	handler atomic.Pointer[func([]byte)]
	acks    atomic.Int64 // PUBACKs received
	ackCh   chan struct{}
	subCh   chan struct{}
	done    chan struct{}
	err     atomic.Pointer[error]
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func (r Raw) Connect(ctx context.Context, ep Endpoint, id string) (Conn, error) {
	nc, err := dialConnect(ctx, ep, id)
	if err != nil {
		return nil, err
	}
	c := &rawConn{rate: r.Rate, window: r.Window, nc: nc, ackCh: make(chan struct{}, 1), subCh: make(chan struct{}, 1), done: make(chan struct{})}
	go c.read()
	return c, nil
}

// dialConnect dials ep (TLS when ep.TLS is set) and makes an MQTT 3.1.1 connection with a
// clean session and a 60 s keepalive: CONNECT, and a CONNACK that accepts it.
func dialConnect(ctx context.Context, ep Endpoint, id string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", ep.Addr)
	if err != nil {
		return nil, err
	}
	if ep.TLS != nil {
		tc := tls.Client(nc, ep.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60}
	body = appendString(body, id)
	pkt := packet.AppendVarInt([]byte{0x10}, len(body))
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	if _, err := nc.Write(append(pkt, body...)); err != nil {
		nc.Close()
		return nil, err
	}
	var ack [4]byte
	if _, err := io.ReadFull(nc, ack[:]); err != nil {
		nc.Close()
		return nil, err
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		nc.Close()
		return nil, fmt.Errorf("benchmarks: raw: CONNACK % x", ack)
	}
	nc.SetDeadline(time.Time{})
	return nc, nil
}

func (c *rawConn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.nc.Write(b)
	return err
}

func (c *rawConn) read() {
	defer close(c.done)
	rd := bufio.NewReaderSize(c.nc, 64<<10)
	var acks []byte
	var body []byte
	fail := func(err error) { c.err.CompareAndSwap(nil, &err) }
	for {
		if len(acks) > 0 && rd.Buffered() == 0 {
			if err := c.write(acks); err != nil {
				fail(err)
				return
			}
			acks = acks[:0]
		}
		h, err := rd.ReadByte()
		if err != nil {
			fail(err)
			return
		}
		n, mul := 0, 1
		for {
			b, err := rd.ReadByte()
			if err != nil {
				fail(err)
				return
			}
			n += int(b&0x7f) * mul
			mul *= 128
			if b&0x80 == 0 {
				break
			}
		}
		if cap(body) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(rd, body); err != nil {
			fail(err)
			return
		}
		switch h >> 4 {
		case 3: // PUBLISH
			if len(body) < 2 {
				fail(errors.New("benchmarks: raw: short PUBLISH"))
				return
			}
			tl := int(binary.BigEndian.Uint16(body))
			p := body[2+tl:]
			if qos := (h >> 1) & 3; qos > 0 {
				acks = append(acks, 0x40, 2, p[0], p[1])
				p = p[2:]
			}
			if hp := c.handler.Load(); hp != nil {
				(*hp)(p)
			}
		case 4: // PUBACK
			c.acks.Add(1)
			select {
			case c.ackCh <- struct{}{}:
			default:
			}
		case 9: // SUBACK
			select {
			case c.subCh <- struct{}{}:
			default:
			}
		}
	}
}

func (c *rawConn) failed() error {
	if e := c.err.Load(); e != nil {
		return *e
	}
	return errors.New("benchmarks: raw: connection closed")
}

func (c *rawConn) Subscribe(ctx context.Context, topic string, qos byte, h func([]byte)) error {
	c.handler.Store(&h)
	body := binary.BigEndian.AppendUint16(nil, 1)
	body = appendString(body, topic)
	body = append(body, qos)
	if err := c.write(append(packet.AppendVarInt([]byte{0x82}, len(body)), body...)); err != nil {
		return err
	}
	select {
	case <-c.subCh:
		return nil
	case <-c.done:
		return c.failed()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func appendPublish(b []byte, topic string, qos byte, id uint16, payload []byte) []byte {
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	b = packet.AppendVarInt(append(b, 0x30|qos<<1), n)
	b = appendString(b, topic)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	return append(b, payload...)
}

// waitAcks waits until at least want PUBACKs have arrived.
func (c *rawConn) waitAcks(ctx context.Context, want int64) error {
	for c.acks.Load() < want {
		select {
		case <-c.ackCh:
		case <-c.done:
			return c.failed()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (c *rawConn) PublishBurst(ctx context.Context, topic string, qos byte, n int, payload func(int) []byte) error {
	const chunk = 256 << 10
	base := c.acks.Load()
	buf := make([]byte, 0, chunk+512)
	start := time.Now()
	for i := 0; i < n; i++ {
		if qos > 0 && c.window > 0 && i >= c.window {
			// the window is full until message i-window is acknowledged: send what is
			// buffered, then wait for that PUBACK
			if need := base + int64(i-c.window+1); c.acks.Load() < need {
				if len(buf) > 0 {
					if err := c.write(buf); err != nil {
						return err
					}
					buf = buf[:0]
					c.noteOut(int64(i), base)
				}
				if err := c.waitAcks(ctx, need); err != nil {
					return err
				}
			}
		}
		buf = appendPublish(buf, topic, qos, uint16(i%65535+1), payload(i))
		// paced: flush when the next message is not due yet, then wait until it is
		var due time.Duration
		if c.rate > 0 {
			due = time.Duration(float64(i+1) / c.rate * float64(time.Second))
		}
		if len(buf) >= chunk || i == n-1 || due > time.Since(start) {
			if qos > 0 {
				// Packet identifiers must not be reused while in flight.
				if err := c.waitAcks(ctx, base+int64(i+1-60000)); err != nil {
					return err
				}
			}
			if err := c.write(buf); err != nil {
				return err
			}
			buf = buf[:0]
			if qos > 0 {
				c.noteOut(int64(i+1), base)
			}
			if wait := due - time.Since(start); wait > 0 {
				time.Sleep(max(wait, time.Millisecond))
			}
		}
	}
	if qos > 0 {
		return c.waitAcks(ctx, base+int64(n))
	}
	return nil
}

// noteOut records the publishes outstanding after written of this burst were written.
func (c *rawConn) noteOut(written, base int64) {
	c.maxOut = max(c.maxOut, written-(c.acks.Load()-base))
}

func (c *rawConn) Publish(ctx context.Context, topic string, qos byte, payload []byte) error {
	base := c.acks.Load()
	if err := c.write(appendPublish(nil, topic, qos, 1, payload)); err != nil {
		return err
	}
	if qos > 0 {
		return c.waitAcks(ctx, base+1)
	}
	return nil
}

func (c *rawConn) Close() error {
	c.write([]byte{0xe0, 0})
	err := c.nc.Close()
	<-c.done
	return err
}

// Floor is not a client either: the least an idle MQTT connection can cost in this process, for
// the idle-memory figures — the (TLS) connection after CONNACK, one 256-byte read buffer and one
// goroutine blocked reading it. It only connects and closes.
type Floor struct{}

func (Floor) Name() string  { return "floor: TLS conn, one buffer, one goroutine" }
func (Floor) Short() string { return "floor" }

type floorConn struct {
	nc   net.Conn
	done chan struct{}
}

func (Floor) Connect(ctx context.Context, ep Endpoint, id string) (Conn, error) {
	nc, err := dialConnect(ctx, ep, id)
	if err != nil {
		return nil, err
	}
	c := &floorConn{nc: nc, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		buf := make([]byte, 256)
		for {
			if _, err := nc.Read(buf); err != nil {
				return
			}
		}
	}()
	return c, nil
}

var errFloor = errors.New("benchmarks: the floor connection only connects")

func (c *floorConn) Subscribe(context.Context, string, byte, func([]byte)) error { return errFloor }
func (c *floorConn) PublishBurst(context.Context, string, byte, int, func(int) []byte) error {
	return errFloor
}
func (c *floorConn) Publish(context.Context, string, byte, []byte) error { return errFloor }

func (c *floorConn) Close() error {
	c.nc.Write([]byte{0xe0, 0})
	err := c.nc.Close()
	<-c.done
	return err
}
