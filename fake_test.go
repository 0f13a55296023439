package fennec_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// fakeBroker is a scripted peer for what no real broker does: the test reads and writes
// packets by hand.
type fakeBroker struct {
	addr  string
	conns chan *fakeConn
}

type fakeConn struct {
	t  *testing.T
	nc net.Conn
	rd *packet.Reader
	v  packet.Version
}

func startFake(t *testing.T, v packet.Version) *fakeBroker {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBroker{addr: l.Addr().String(), conns: make(chan *fakeConn, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			fb.conns <- &fakeConn{t: t, nc: nc, rd: packet.NewReader(nc, 0), v: v}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for {
			select {
			case fc := <-fb.conns:
				fc.nc.Close()
			default:
				return
			}
		}
	})
	return fb
}

func (fb *fakeBroker) url() string { return "mqtt://" + fb.addr }

// next returns the next client connection.
func (fb *fakeBroker) next(t *testing.T) *fakeConn {
	t.Helper()
	select {
	case fc := <-fb.conns:
		t.Cleanup(func() { fc.nc.Close() })
		return fc
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not connect")
		return nil
	}
}

func (f *fakeConn) read() packet.Packet {
	f.t.Helper()
	f.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	p, err := f.rd.ReadPacket(f.v)
	if err != nil {
		f.t.Fatalf("fake broker read: %v", err)
	}
	return p
}

// readType reads packets until one of type typ, skipping PINGREQ.
func (f *fakeConn) readType(typ packet.Type) packet.Packet {
	f.t.Helper()
	for {
		p := f.read()
		if p.Type() == typ {
			return p
		}
		if p.Type() != packet.PINGREQ {
			f.t.Fatalf("fake broker: got %v, want %v", p.Type(), typ)
		}
	}
}

func (f *fakeConn) write(ps ...packet.Packet) {
	f.t.Helper()
	var b []byte
	for _, p := range ps {
		var err error
		b, err = p.Append(b, f.v)
		if err != nil {
			f.t.Fatalf("fake broker encode %v: %v", p.Type(), err)
		}
	}
	f.writeRaw(b)
}

func (f *fakeConn) writeRaw(b []byte) {
	f.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := f.nc.Write(b); err != nil {
		f.t.Logf("fake broker write: %v", err)
	}
}

// accept reads CONNECT and answers CONNACK.
func (f *fakeConn) accept(sessionPresent bool, props ...func(*packet.Properties)) *packet.Connect {
	f.t.Helper()
	p := f.read()
	c, ok := p.(*packet.Connect)
	if !ok {
		f.t.Fatalf("fake broker: first packet %v, want CONNECT", p.Type())
	}
	ack := &packet.Connack{SessionPresent: sessionPresent}
	for _, fn := range props {
		fn(&ack.Props)
	}
	f.write(ack)
	return c
}

// expectClosed waits until the client closes the connection, skipping what it sends.
func (f *fakeConn) expectClosed() []packet.Packet {
	f.t.Helper()
	var got []packet.Packet
	for {
		f.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		p, err := f.rd.ReadPacket(f.v)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				// Error, not Fatal: expectClosed may run on a goroutine of its own
				f.t.Error("fake broker: the client did not close the connection")
			}
			return got
		}
		got = append(got, p)
	}
}

// fastReconnect is a Config for tests: short backoff.
func fastReconnect(server string, v packet.Version) fennec.Config {
	return fennec.Config{Server: server, Version: v, ClientID: "fennec-test",
		Backoff: func(int) time.Duration { return 10 * time.Millisecond }}
}

// connectFake connects a client to the fake broker, which accepts with sessionPresent.
func connectFake(t *testing.T, fb *fakeBroker, cfg fennec.Config, sessionPresent bool, props ...func(*packet.Properties)) (*fennec.Client, *fakeConn) {
	t.Helper()
	type result struct {
		c   *fennec.Client
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := fennec.Connect(context.Background(), cfg)
		res <- result{c, err}
	}()
	fc := fb.next(t)
	fc.accept(sessionPresent, props...)
	r := <-res
	if r.err != nil {
		t.Fatalf("Connect: %v", r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c, fc
}

type netConn = net.Conn

func pipePair() (net.Conn, net.Conn) { return net.Pipe() }

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
