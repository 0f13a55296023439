//go:build linux

package mqttconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

// streamBroker accepts one connection (over TLS when cfg is set), answers CONNECT with
// CONNACK and runs script. Every Write of the connection it hands script is cut in two
// halves written split ms apart when split > 0, so TLS records and packets arrive in pieces.
func streamBroker(t *testing.T, cfg *tls.Config, split time.Duration, script func(w func([]byte) error)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		raw, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer raw.Close()
		var nc net.Conn = splitConn{raw, split}
		if cfg != nil {
			nc = tls.Server(nc, cfg)
		}
		nc.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := packet.NewReader(nc, 0).ReadPacket(packet.V5); err != nil {
			return
		}
		ack, _ := (&packet.Connack{}).Append(nil, packet.V5)
		if _, err := nc.Write(ack); err != nil {
			return
		}
		script(func(b []byte) error { _, err := nc.Write(b); return err })
		// Read (and never answer) until the client closes the connection.
		io.Copy(io.Discard, nc)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// splitConn writes every buffer in two halves, split apart.
type splitConn struct {
	net.Conn
	split time.Duration
}

func (s splitConn) Write(b []byte) (int, error) {
	if s.split <= 0 || len(b) < 2 {
		return s.Conn.Write(b)
	}
	n, err := s.Conn.Write(b[:len(b)/2])
	if err != nil {
		return n, err
	}
	time.Sleep(s.split)
	m, err := s.Conn.Write(b[len(b)/2:])
	return n + m, err
}

func seqPublish(i int) []byte {
	p := make([]byte, 40)
	binary.BigEndian.PutUint32(p, uint32(i))
	b, _ := (&packet.Publish{Topic: "coalesce/test", Payload: p}).Append(nil, packet.V5)
	return b
}

// collector records the sequence numbers of the PUBLISH packets a connection reads.
type collector struct {
	mu   sync.Mutex
	seqs []int
	at   []time.Time
	got  chan struct{}
}

func (c *collector) onPacket(_ *Conn, p packet.Packet) {
	if pub, ok := p.(*packet.Publish); ok {
		c.mu.Lock()
		c.seqs = append(c.seqs, int(binary.BigEndian.Uint32(pub.Payload)))
		c.at = append(c.at, time.Now())
		c.mu.Unlock()
		select {
		case c.got <- struct{}{}:
		default:
		}
	}
}

func (c *collector) waitFor(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		c.mu.Lock()
		have := len(c.seqs)
		c.mu.Unlock()
		if have >= n {
			return
		}
		select {
		case <-c.got:
		case <-deadline:
			t.Fatalf("%d of %d packets read within %v", have, n, within)
		}
	}
}

// runCoalescing dials addr, sets the coalescing threshold to lowat before reading begins (as
// if a dense stream had been seen) and reads until the test ends; it returns the connection's
// coalescer once Run has returned.
func runCoalescing(t *testing.T, addr string, tlsCfg *tls.Config, lowat int, col *collector, keepAlive uint16) (*Conn, func() coalescer, chan error) {
	t.Helper()
	scheme := "mqtt"
	if tlsCfg != nil {
		scheme = "mqtts"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := Dial(ctx, &Options{Scheme: scheme, Addr: addr, TLSConfig: tlsCfg, OnPacket: col.onPacket,
		Connect: packet.Connect{Version: packet.V5, ClientID: "coalesce", CleanStart: true, KeepAlive: keepAlive}})
	if err != nil {
		t.Fatal(err)
	}
	c.co.set(c, lowat)
	if c.co.lowat != lowat {
		t.Fatalf("the socket did not take SO_RCVLOWAT %d", lowat)
	}
	ended := make(chan error, 1)
	go func() { ended <- c.Run() }()
	t.Cleanup(func() { c.Close(nil); <-ended })
	return c, func() coalescer { c.Close(nil); <-ended; ended <- nil; return c.co }, ended
}

// TestCoalescedLonePacket: while the connection waits for a threshold of 4 KiB, a lone packet
// of 50 bytes arrives. It must be read within the threshold's wait (1 ms; 1 s allowed here for a
// loaded machine), not when 4 KiB have come — which here would be never — and coalescing turns
// off after that miss.
func TestCoalescedLonePacket(t *testing.T) {
	sent := make(chan time.Time, 1)
	addr := streamBroker(t, nil, 0, func(w func([]byte) error) {
		time.Sleep(50 * time.Millisecond)
		sent <- time.Now()
		w(seqPublish(1))
	})
	col := &collector{got: make(chan struct{}, 1)}
	_, finish, _ := runCoalescing(t, addr, nil, coalesceMax, col, 0)
	col.waitFor(t, 1, 5*time.Second)
	if d := col.at[0].Sub(<-sent); d > time.Second {
		t.Fatalf("the lone packet was read %v after it was sent", d)
	}
	co := finish()
	if co.misses != 1 || co.lowat != 0 {
		t.Fatalf("misses %d, threshold %d after the lone packet; want 1 and off", co.misses, co.lowat)
	}
}

// TestCoalescedStreamIntact: streams of packets whose writes arrive in halves 2 ms apart (so
// that the 1 ms wait for the threshold times out in the middle of packets and, over TLS, in the
// middle of records) are read whole and in order, over TCP and over TLS 1.3.
func TestCoalescedStreamIntact(t *testing.T) {
	p, err := devpki.Generate(devpki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.CA.Cert)
	srvCfg := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{{
		Certificate: [][]byte{p.Server.Cert.Raw}, PrivateKey: p.Server.Key}}}
	cliCfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots, ServerName: "localhost"}
	const n = 600
	for _, tc := range []struct {
		name string
		srv  *tls.Config
		cli  *tls.Config
	}{{"tcp", nil, nil}, {"tls", srvCfg, cliCfg}} {
		t.Run(tc.name, func(t *testing.T) {
			addr := streamBroker(t, tc.srv, 2*time.Millisecond, func(w func([]byte) error) {
				for i := 0; i < n; {
					// bursts of 1 to 10 packets in one write
					var b []byte
					for k := 0; k <= i%10 && i < n; k++ {
						b = append(b, seqPublish(i)...)
						i++
					}
					if w(b) != nil {
						return
					}
				}
			})
			col := &collector{got: make(chan struct{}, 1)}
			_, finish, _ := runCoalescing(t, addr, tc.cli, coalesceMin, col, 0)
			col.waitFor(t, n, 15*time.Second)
			co := finish()
			for i, s := range col.seqs {
				if s != i {
					t.Fatalf("packet %d has sequence %d", i, s)
				}
			}
			if co.misses == 0 {
				t.Fatal("no wait timed out: the test did not reach the case it is for")
			}
		})
	}
}

// TestCoalescingKeepsKeepAlive: a broker that goes silent while the connection coalesces still
// ends it with ErrKeepAliveTimeout within about 1.5 keep alive intervals, and not before one:
// the keep-alive deadline comes back after the miss.
func TestCoalescingKeepsKeepAlive(t *testing.T) {
	addr := streamBroker(t, nil, 0, func(func([]byte) error) {})
	col := &collector{got: make(chan struct{}, 1)}
	start := time.Now()
	c, _, ended := runCoalescing(t, addr, nil, coalesceMax, col, 1)
	select {
	case err := <-ended:
		ended <- err
		if !errors.Is(err, ErrKeepAliveTimeout) {
			t.Fatalf("Run: %v, want ErrKeepAliveTimeout", err)
		}
		if d := time.Since(start); d < time.Second {
			t.Fatalf("keep-alive timeout after %v with a 1 s keep alive: too early", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a silent broker kept a coalescing connection up for 10 s with a 1 s keep alive")
	}
	if c.co.misses == 0 {
		t.Fatal("no miss recorded")
	}
}
