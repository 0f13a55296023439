package mqttconn_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/internal/connfast"
	"github.com/fennec-mqtt/fennec/mqttconn"
	"github.com/fennec-mqtt/fennec/packet"
)

// gatedConn counts writes; the gate, while closed, holds the writer inside Write.
type gatedConn struct {
	net.Conn
	writes atomic.Int32
	gate   chan struct{}
	once   sync.Once
	inside chan struct{}
}

func (g *gatedConn) Write(b []byte) (int, error) {
	if g.writes.Add(1) == 2 { // the first write is CONNECT
		g.once.Do(func() { close(g.inside) })
		<-g.gate
	}
	return g.Conn.Write(b)
}

// serve answers CONNECT with CONNACK and then reads packets into out.
func serve(t *testing.T, nc net.Conn, out chan<- packet.Packet) {
	rd := packet.NewReader(nc, 0)
	if _, err := rd.ReadPacket(packet.V5); err != nil {
		t.Error(err)
		return
	}
	b, _ := (&packet.Connack{}).Append(nil, packet.V5)
	nc.Write(b)
	for {
		p, err := rd.ReadPacket(packet.V5)
		if err != nil {
			close(out)
			return
		}
		out <- p
	}
}

// TestWriteBatching: packets queued while a write is in progress leave in one Write.
func TestWriteBatching(t *testing.T) {
	srv, cli := net.Pipe()
	g := &gatedConn{Conn: cli, gate: make(chan struct{}), inside: make(chan struct{})}
	out := make(chan packet.Packet, 1000)
	go serve(t, srv, out)
	c, _, err := mqttconn.Dial(context.Background(), &mqttconn.Options{Addr: "x:1", Scheme: "mqtt",
		Dial:    func(context.Context, string, string) (net.Conn, error) { return g, nil },
		Connect: packet.Connect{ClientID: "b", CleanStart: true}})
	if err != nil {
		t.Fatal(err)
	}
	go c.Run()
	c.SendNow(&packet.Publish{Topic: "first"}, nil)
	<-g.inside // the writer is blocked writing "first"
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		c.SendNow(&packet.Publish{Topic: "t", Payload: []byte{byte(i)}}, func(err error) {
			if err != nil {
				t.Error(err)
			}
			wg.Done()
		})
	}
	close(g.gate)
	wg.Wait()
	for i := 0; i < 101; i++ {
		<-out
	}
	if n := g.writes.Load(); n != 3 {
		t.Fatalf("%d writes, want 3 (CONNECT, first, then the 100 queued packets together)", n)
	}
	c.Close(nil)
	srv.Close()
}

// TestSendWaitsForQueueSpace: Send waits while QueueBytes are queued and honours ctx.
func TestSendWaitsForQueueSpace(t *testing.T) {
	srv, cli := net.Pipe()
	g := &gatedConn{Conn: cli, gate: make(chan struct{}), inside: make(chan struct{})}
	out := make(chan packet.Packet, 1000)
	go serve(t, srv, out)
	c, _, err := mqttconn.Dial(context.Background(), &mqttconn.Options{Addr: "x:1", Scheme: "mqtt",
		QueueBytes: 1000,
		Dial:       func(context.Context, string, string) (net.Conn, error) { return g, nil },
		Connect:    packet.Connect{ClientID: "b", CleanStart: true}})
	if err != nil {
		t.Fatal(err)
	}
	go c.Run()
	c.SendNow(&packet.Publish{Topic: "first"}, nil)
	<-g.inside
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var err2 error
	for i := 0; i < 100 && err2 == nil; i++ {
		err2 = c.Send(ctx, &packet.Publish{Topic: "t", Payload: make([]byte, 100)}, nil)
	}
	if !errors.Is(err2, context.DeadlineExceeded) {
		t.Fatalf("Send with a full queue: %v, want DeadlineExceeded", err2)
	}
	close(g.gate)
	c.Close(nil)
	srv.Close()
	io.Copy(io.Discard, srv)
}

// TestLargePayloadVectored: a large payload batched with small packets arrives intact and in
// order (written from the caller's slice, not copied), and the broker's Maximum Packet Size
// still counts the payload.
func TestLargePayloadVectored(t *testing.T) {
	srv, cli := net.Pipe()
	out := make(chan packet.Packet, 10)
	go serve(t, srv, out)
	c, _, err := mqttconn.Dial(context.Background(), &mqttconn.Options{Addr: "x:1", Scheme: "mqtt",
		Dial:    func(context.Context, string, string) (net.Conn, error) { return cli, nil },
		Connect: packet.Connect{ClientID: "v", CleanStart: true}})
	if err != nil {
		t.Fatal(err)
	}
	go c.Run()
	big := make([]byte, 200<<10)
	for i := range big {
		big[i] = byte(i * 7)
	}
	c.SendNow(&packet.Publish{Topic: "a", Payload: []byte("small")}, nil)
	c.SendNow(&packet.Publish{Topic: "big", QoS: 1, PacketID: 3, Payload: big}, nil)
	c.SendNow(&packet.Publish{Topic: "b", Payload: []byte("after")}, nil)
	want := []string{"a", "big", "b"}
	for _, w := range want {
		p := (<-out).(*packet.Publish)
		if p.Topic != w {
			t.Fatalf("got %q, want %q", p.Topic, w)
		}
		if w == "big" && (p.PacketID != 3 || string(p.Payload) != string(big)) {
			t.Fatalf("large payload corrupted (id %d, %d bytes)", p.PacketID, len(p.Payload))
		}
	}
	c.Close(nil)
	srv.Close()
}

// TestSendAck: acknowledgements queued by SendAck reach the peer as valid packets of the
// connection's version (decoded by the codec), in order with other packets; the trace still
// sees each as a packet; a non-acknowledgement or packet ID 0 is refused.
func TestSendAck(t *testing.T) {
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		srv, cli := net.Pipe()
		out := make(chan packet.Packet, 10)
		go func() {
			rd := packet.NewReader(srv, 0)
			if _, err := rd.ReadPacket(v); err != nil {
				t.Error(err)
				return
			}
			b, _ := (&packet.Connack{}).Append(nil, v)
			srv.Write(b)
			for {
				p, err := rd.ReadPacket(v)
				if err != nil {
					close(out)
					return
				}
				out <- p
			}
		}()
		var mu sync.Mutex
		var traced []packet.Type
		c, _, err := mqttconn.Dial(context.Background(), &mqttconn.Options{Addr: "x:1", Scheme: "mqtt",
			Dial:    func(context.Context, string, string) (net.Conn, error) { return cli, nil },
			Connect: packet.Connect{Version: v, ClientID: "a", CleanStart: true},
			Trace: func(e mqttconn.Event) {
				if e.Outbound && e.Packet != nil {
					mu.Lock()
					traced = append(traced, e.Packet.Type())
					mu.Unlock()
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		go c.Run()
		if err := c.SendAck(packet.SUBACK, 1); err == nil {
			t.Error("SendAck(SUBACK) accepted")
		}
		if err := c.SendAck(packet.PUBACK, 0); err == nil {
			t.Error("SendAck with packet ID 0 accepted")
		}
		c.SendAck(packet.PUBACK, 1)
		c.SendAck(packet.PUBREC, 2)
		c.SendNow(&packet.Publish{Topic: "between"}, nil)
		c.SendAck(packet.PUBREL, 3)
		c.SendAck(packet.PUBCOMP, 65535)
		want := []struct {
			t  packet.Type
			id uint16
		}{{packet.PUBACK, 1}, {packet.PUBREC, 2}, {packet.PUBLISH, 0}, {packet.PUBREL, 3}, {packet.PUBCOMP, 65535}}
		for _, w := range want {
			p := <-out
			if p.Type() != w.t {
				t.Fatalf("%v: got %v, want %v", v, p.Type(), w.t)
			}
			var id uint16
			var rc packet.ReasonCode
			switch p := p.(type) {
			case *packet.Puback:
				id, rc = p.PacketID, p.ReasonCode
			case *packet.Pubrec:
				id, rc = p.PacketID, p.ReasonCode
			case *packet.Pubrel:
				id, rc = p.PacketID, p.ReasonCode
			case *packet.Pubcomp:
				id, rc = p.PacketID, p.ReasonCode
			}
			if id != w.id || rc != 0 {
				t.Fatalf("%v %v: packet ID %d reason %v, want %d Success", v, w.t, id, rc, w.id)
			}
		}
		c.Close(nil)
		srv.Close()
		mu.Lock()
		ok := len(traced) == len(want)+1 && traced[0] == packet.CONNECT
		for i := 0; ok && i < len(want); i++ {
			ok = traced[i+1] == want[i].t
		}
		if !ok {
			t.Errorf("%v: traced %v, want CONNECT and the %d packets above", v, traced, len(want))
		}
		mu.Unlock()
	}
}

// TestHandOff: HandOff during OnPacket makes Run return ErrHandedOff once OnPacket returns,
// without reading on; Run called again continues with the next packet; outside OnPacket, or a
// second time, HandOff reports false.
func TestHandOff(t *testing.T) {
	srv, cli := net.Pipe()
	go servePublishes(t, srv, nil, "a", "b", "c")
	got := make(chan string, 3)
	release := make(chan struct{})
	var c *mqttconn.Conn
	var first, second bool
	opts := &mqttconn.Options{Addr: "x:1", Scheme: "mqtt",
		Dial:    func(context.Context, string, string) (net.Conn, error) { return cli, nil },
		Connect: packet.Connect{ClientID: "h", CleanStart: true},
		OnPacket: func(conn *mqttconn.Conn, p packet.Packet) {
			pub, ok := p.(*packet.Publish)
			if !ok {
				return
			}
			if pub.Topic == "a" {
				first, second = connfast.HandOff(conn), connfast.HandOff(conn)
				got <- pub.Topic
				<-release // held: the next Run call reads on meanwhile
				return
			}
			got <- pub.Topic
		}}
	c, _, err := mqttconn.Dial(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if connfast.HandOff(c) {
		t.Error("HandOff outside OnPacket reported true")
	}
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run() }()
	if tp := <-got; tp != "a" {
		t.Fatalf("got %q", tp)
	}
	if !first || second {
		t.Fatalf("HandOff in OnPacket: %v then %v, want true then false", first, second)
	}
	rest := make(chan error, 1)
	go func() { rest <- c.Run() }()
	for _, want := range []string{"b", "c"} {
		if tp := <-got; tp != want {
			t.Fatalf("after the hand-off got %q, want %q", tp, want)
		}
	}
	select {
	case err := <-runErr:
		t.Fatalf("Run returned %v while its OnPacket still ran", err)
	default:
	}
	close(release)
	if err := <-runErr; !errors.Is(err, mqttconn.ErrHandedOff) {
		t.Fatalf("first Run: %v, want ErrHandedOff", err)
	}
	c.Close(nil)
	if err := <-rest; !errors.Is(err, mqttconn.ErrClosed) {
		t.Fatalf("second Run: %v, want ErrClosed", err)
	}
	srv.Close()
}

// TestQueueFlush: packets queued with Queue leave only after Flush, in order with packets sent
// meanwhile, both when Flush writes on the calling goroutine (loopback TCP, empty send buffer)
// and when it leaves the write to the writing goroutine (a pipe, whose send queue is unknown).
func TestQueueFlush(t *testing.T) {
	for _, transport := range []string{"tcp", "pipe"} {
		t.Run(transport, func(t *testing.T) {
			var srv, cli net.Conn
			if transport == "tcp" {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				cli, err = net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				if srv, err = ln.Accept(); err != nil {
					t.Fatal(err)
				}
			} else {
				srv, cli = net.Pipe()
			}
			out := make(chan packet.Packet, 10)
			go serve(t, srv, out)
			c, _, err := mqttconn.Dial(context.Background(), &mqttconn.Options{Addr: "x:1", Scheme: "mqtt",
				Dial:    func(context.Context, string, string) (net.Conn, error) { return cli, nil },
				Connect: packet.Connect{ClientID: "q", CleanStart: true}})
			if err != nil {
				t.Fatal(err)
			}
			go c.Run()
			written := make(chan error, 2)
			connfast.Queue(c, &packet.Publish{Topic: "a"}, func(err error) { written <- err })
			c.SendNow(&packet.Publish{Topic: "b"}, func(err error) { written <- err })
			select {
			case p := <-out:
				t.Fatalf("%v left before Flush", p)
			case <-time.After(20 * time.Millisecond):
			}
			connfast.Flush(c)
			for _, want := range []string{"a", "b"} {
				if err := <-written; err != nil {
					t.Fatal(err)
				}
				if p := (<-out).(*packet.Publish); p.Topic != want {
					t.Fatalf("got %q, want %q", p.Topic, want)
				}
			}
			connfast.Queue(c, &packet.Publish{Topic: "c"}, nil)
			connfast.Flush(c)
			if p := (<-out).(*packet.Publish); p.Topic != "c" {
				t.Fatalf("got %q, want c", p.Topic)
			}
			c.Close(nil)
			srv.Close()
		})
	}
}

// TestQueueManyFlushOnce: a caller that queues several packets under its own lock (the
// client's pump, when a window reopens or messages wait behind one) and flushes once gets all of
// them written; a flush that only counted one queued packet off left the rest, and the
// connection's writing, stalled.
func TestQueueManyFlushOnce(t *testing.T) {
	srv, cli := net.Pipe()
	defer srv.Close()
	out := make(chan packet.Packet, 10)
	go serve(t, srv, out)
	c, _, err := mqttconn.Dial(context.Background(), &mqttconn.Options{Addr: "x:1", Scheme: "mqtt",
		Dial:    func(context.Context, string, string) (net.Conn, error) { return cli, nil },
		Connect: packet.Connect{ClientID: "q", CleanStart: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(nil)
	go c.Run()
	for _, topic := range []string{"a", "b", "c"} {
		connfast.Queue(c, &packet.Publish{Topic: topic}, nil)
	}
	connfast.Flush(c)
	for _, want := range []string{"a", "b", "c"} {
		select {
		case p := <-out:
			if p.(*packet.Publish).Topic != want {
				t.Fatalf("got %q, want %q", p.(*packet.Publish).Topic, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%q not written after one Flush of three queued packets", want)
		}
	}
	// And the connection writes on: a later SendNow is not held back.
	c.SendNow(&packet.Publish{Topic: "d"}, nil)
	select {
	case p := <-out:
		if p.(*packet.Publish).Topic != "d" {
			t.Fatalf("got %q, want d", p.(*packet.Publish).Topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SendNow after the flush was never written")
	}
}

// TestBuffered: while packets that arrived together are handed to OnPacket, Buffered reports
// the bytes of those still to come, and 0 for the last one.
func TestBuffered(t *testing.T) {
	srv, cli := net.Pipe()
	go servePublishes(t, srv, []byte("12345"), "a", "b", "c")
	buffered := map[string]int{}
	done := make(chan struct{})
	opts := &mqttconn.Options{Addr: "x:1", Scheme: "mqtt",
		Dial:    func(context.Context, string, string) (net.Conn, error) { return cli, nil },
		Connect: packet.Connect{ClientID: "b", CleanStart: true},
		OnPacket: func(conn *mqttconn.Conn, p packet.Packet) {
			if pub, ok := p.(*packet.Publish); ok {
				buffered[pub.Topic] = connfast.Buffered(conn)
				if pub.Topic == "c" {
					close(done)
				}
			}
		}}
	c, _, err := mqttconn.Dial(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	go c.Run()
	<-done
	c.Close(nil)
	// a PUBLISH with topic "x" and a 5-byte payload under MQTT 5 is 11 bytes
	if buffered["a"] != 22 || buffered["b"] != 11 || buffered["c"] != 0 {
		t.Fatalf("Buffered during a, b, c: %v, want 22, 11, 0", buffered)
	}
}

// servePublishes plays an MQTT 5 broker on srv: it reads CONNECT, then writes CONNACK and a
// PUBLISH per topic (with payload) in one write, so that the client's first read takes them all,
// and discards what the client sends afterwards.
func servePublishes(t *testing.T, srv net.Conn, payload []byte, topics ...string) {
	rd := packet.NewReader(srv, 0)
	if _, err := rd.ReadPacket(packet.V5); err != nil {
		t.Error(err)
		return
	}
	var b []byte
	b, _ = (&packet.Connack{}).Append(b, packet.V5)
	for _, topic := range topics {
		b, _ = (&packet.Publish{Topic: topic, Payload: payload}).Append(b, packet.V5)
	}
	srv.Write(b)
	io.Copy(io.Discard, srv)
}
