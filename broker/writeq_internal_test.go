package broker

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the writes that reach a connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestWriteQueueKeepsOrderAndBatches: packets written one by one, as mochi writes them, arrive
// whole and in order, in fewer writes than packets once the peer reads slower than they come.
func TestWriteQueueKeepsOrderAndBatches(t *testing.T) {
	a, b := tcpPair(t)
	cc := &countingConn{Conn: a}
	q := newWriteQueue(cc)
	const n = 20000
	var want bytes.Buffer
	got := make(chan []byte, 1)
	go func() {
		data, _ := io.ReadAll(io.LimitReader(b, int64(n*8)))
		got <- data
	}()
	for i := range n {
		p := []byte{0x30, 0x06, 0, 1, 'x', byte(i >> 8), byte(i), 0}
		want.Write(p)
		if _, err := q.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	q.Close()
	select {
	case data := <-got:
		if !bytes.Equal(data, want.Bytes()) {
			t.Fatalf("the peer read %d bytes, not the %d written in order", len(data), want.Len())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the peer did not get the bytes")
	}
	if w := cc.writes.Load(); w >= n {
		t.Fatalf("%d packets took %d writes: none were batched", n, w)
	} else {
		t.Logf("%d packets in %d writes", n, w)
	}
}

// TestWriteQueueBound: a peer that reads nothing makes Write wait once writeQueueLimit bytes
// are pending, instead of queueing without end; Close still returns, within its flush timeout.
func TestWriteQueueBound(t *testing.T) {
	a, _ := tcpPair(t)
	q := newWriteQueue(a)
	p := make([]byte, 4096)
	var queued atomic.Int64
	stuck := make(chan struct{})
	go func() {
		defer close(stuck)
		for {
			if _, err := q.Write(p); err != nil {
				return
			}
			queued.Add(int64(len(p)))
		}
	}()
	// the socket buffers take some; then the queue fills and Write waits
	var last int64
	for i := 0; ; i++ {
		time.Sleep(50 * time.Millisecond)
		cur := queued.Load()
		if cur == last && i > 2 {
			break
		}
		last = cur
		if i > 200 {
			t.Fatal("Write never waited for a peer that reads nothing")
		}
	}
	q.mu.Lock()
	pending := len(q.pending)
	q.mu.Unlock()
	if pending > writeQueueLimit+len(p) {
		t.Fatalf("%d bytes pending, above the bound %d", pending, writeQueueLimit+len(p))
	}
	start := time.Now()
	q.Close()
	if d := time.Since(start); d > closeFlushTimeout+2*time.Second {
		t.Fatalf("Close took %v for a peer that reads nothing", d)
	}
	select {
	case <-stuck:
	case <-time.After(5 * time.Second):
		t.Fatal("a Write waiting for space did not end at Close")
	}
}

// TestWriteQueueCloseFlushes: what was written just before Close (a DISCONNECT, a refusal)
// reaches the peer.
func TestWriteQueueCloseFlushes(t *testing.T) {
	a, b := tcpPair(t)
	q := newWriteQueue(a)
	q.Write([]byte{0xE0, 0x01, 0x8B})
	q.Close()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	data, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(data, []byte{0xE0, 0x01, 0x8B}) {
		t.Fatalf("the peer read %x (%v), not the DISCONNECT written before Close", data, err)
	}
	if _, err := q.Write([]byte{1}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v, want net.ErrClosed", err)
	}
}

// failConn fails every write.
type failConn struct {
	net.Conn
	closed atomic.Bool
}

var errWriteFailed = errors.New("write failed")

func (c *failConn) Write([]byte) (int, error) { return 0, errWriteFailed }
func (c *failConn) Close() error              { c.closed.Store(true); return c.Conn.Close() }

// TestWriteQueueWriteError: a failed write closes the connection (its reader ends) and every
// later Write reports the failure.
func TestWriteQueueWriteError(t *testing.T) {
	a, _ := tcpPair(t)
	fc := &failConn{Conn: a}
	q := newWriteQueue(fc)
	q.Write([]byte{0x30, 0x00})
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := q.Write([]byte{0x30, 0x00})
		if errors.Is(err, errWriteFailed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Write still returns %v after the connection's write failed", err)
		}
		time.Sleep(time.Millisecond)
	}
	if !fc.closed.Load() {
		t.Fatal("the connection was not closed after its write failed")
	}
	q.Close()
}

// tcpPair returns two ends of a loopback TCP connection, closed at the end of the test.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var b net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b, _ = ln.Accept()
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}
