package capture_test

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/capture"
)

// stuckConn is a connection whose writes write the first `take` bytes of each call (all when
// negative) and then block until it is closed, when they fail.
type stuckConn struct {
	take    int
	entered chan struct{}
	closed  chan struct{}
	once    sync.Once
}

func (s *stuckConn) Read([]byte) (int, error) { <-s.closed; return 0, net.ErrClosed }
func (s *stuckConn) Write(b []byte) (int, error) {
	if s.take < 0 {
		return len(b), nil
	}
	s.entered <- struct{}{}
	<-s.closed
	return min(s.take, len(b)), net.ErrClosed
}
func (s *stuckConn) Close() error { s.once.Do(func() { close(s.closed) }); return nil }
func (s *stuckConn) LocalAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (s *stuckConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1883}
}
func (s *stuckConn) SetDeadline(time.Time) error      { return nil }
func (s *stuckConn) SetReadDeadline(time.Time) error  { return nil }
func (s *stuckConn) SetWriteDeadline(time.Time) error { return nil }

// A write in progress when the connection is closed (the client's last TLS record, written
// while another goroutine closes) that fails, or writes only part of its bytes, leaves no hole
// in the recorded stream: the FIN follows the bytes that were written. The recorder used to
// give the FIN the sequence number after every byte the write had asked for, so a reader of
// the file saw bytes missing before it (TestHeldBackBounded once found 24 missing, the size
// of a TLS 1.3 record of a DISCONNECT or a close_notify).
func TestWriteCutByClose(t *testing.T) {
	for _, tc := range []struct {
		name string
		take int
		max  int
	}{
		{"nothing written", 0, 0},
		{"part written", 10, 0},
		{"nothing written, MaxHeld 1", 0, 1},
		{"part written, MaxHeld 1", 10, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			rec, err := capture.New(&buf)
			if err != nil {
				t.Fatal(err)
			}
			rec.MaxHeld = tc.max
			sc := &stuckConn{take: -1, entered: make(chan struct{}), closed: make(chan struct{})}
			c := rec.Wrap(sc)
			if _, err := c.Write([]byte("first")); err != nil {
				t.Fatal(err)
			}
			sc.take = tc.take
			done := make(chan error, 1)
			go func() {
				_, err := c.Write(bytes.Repeat([]byte("r"), 24))
				done <- err
			}()
			select {
			case <-sc.entered: // the write is reserved and in progress
			case <-time.After(10 * time.Second): // bounds a broken run only
				t.Fatal("the write never reached the connection")
			}
			c.Close()
			if err := <-done; !errors.Is(err, net.ErrClosed) {
				t.Fatalf("write: %v", err)
			}
			if err := rec.Close(); err != nil {
				t.Fatal(err)
			}
			s := readBack(t, buf.Bytes(), 1883) // fails on a hole in the sequence numbers
			st := s[40000]
			if st == nil {
				t.Fatal("stream missing")
			}
			if want := "first" + string(bytes.Repeat([]byte("r"), tc.take)); st.out.String() != want {
				t.Fatalf("recorded %q, want %q", st.out.String(), want)
			}
			if st.fin != 1 {
				t.Fatalf("%d FIN segments, want 1", st.fin)
			}
		})
	}
}
