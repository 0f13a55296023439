package broker

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// ErrNoClient is returned by fault controls naming a client that is not connected.
var ErrNoClient = errors.New("broker: no such connected client")

// Faults injects failures for tests: refused connections, dropped clients, a broker that stops
// reading, late acknowledgements. Get it from Broker.Faults. All methods are safe for concurrent
// use; the faults end with the broker.
type Faults struct {
	b *Broker

	refuse      atomic.Int64 // connections still to close right after accept
	refuseAcks  atomic.Int64 // CONNECTs still to refuse with connackCode
	connackCode atomic.Uint32
	ackDelay    atomic.Int64 // nanoseconds
	acksHeld    atomic.Int64 // acknowledgements waiting in delayAck

	mu           sync.Mutex
	delayChanged chan struct{} // closed and replaced by each DelayAcks call

	gate *gate
}

func newFaults() *Faults {
	return &Faults{gate: &gate{paused: map[*conn]chan struct{}{}}, delayChanged: make(chan struct{})}
}

// RefuseConnections closes the next n accepted TCP connections at once, before TLS and MQTT: the
// client sees a reset or EOF, as from a broker that is overloaded or filtered.
func (f *Faults) RefuseConnections(n int) { f.refuse.Store(int64(n)) }

// RefuseConnects answers the next n CONNECT packets with a CONNACK carrying reason, an MQTT 5
// reason code (0x80 and above; mapped to the nearest 3.1.1 return code for 3.1.1 clients), and
// closes the connection.
func (f *Faults) RefuseConnects(n int, reason byte) {
	f.connackCode.Store(uint32(reason))
	f.refuseAcks.Store(int64(n))
}

// DelayAcks holds every PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK the broker sends for
// d before writing it. A new call applies to the acknowledgements already held too: each waits
// until d has passed since it was held, so DelayAcks(0) releases them all at once. The delay also
// holds back the connection's reading, as a slow broker would.
func (f *Faults) DelayAcks(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ackDelay.Store(int64(d))
	close(f.delayChanged)
	f.delayChanged = make(chan struct{})
}

// DropClient closes the network connection of the client with this ID abruptly, without
// DISCONNECT, as a network failure would.
func (f *Faults) DropClient(clientID string) error {
	c, err := f.conn(clientID)
	if err != nil {
		return err
	}
	return c.Close()
}

// StopReading stops reading from the client's connection: its packets pile up in the socket
// buffers until the client's writes block. The broker still writes to the client.
func (f *Faults) StopReading(clientID string) error {
	c, err := f.conn(clientID)
	if err != nil {
		return err
	}
	f.gate.pause(c)
	return nil
}

// ResumeReading undoes StopReading.
func (f *Faults) ResumeReading(clientID string) error {
	c, err := f.conn(clientID)
	if err != nil {
		return err
	}
	f.gate.resume(c)
	return nil
}

func (f *Faults) conn(clientID string) (*conn, error) {
	cl, ok := f.b.srv.Clients.Get(clientID)
	if !ok || cl.Closed() {
		return nil, fmt.Errorf("%w: %q", ErrNoClient, clientID)
	}
	c, ok := cl.Net.Conn.(*conn)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoClient, clientID)
	}
	return c, nil
}

func (f *Faults) takeRefusal() bool { return take(&f.refuse) }

func take(n *atomic.Int64) bool {
	for {
		v := n.Load()
		if v <= 0 {
			return false
		}
		if n.CompareAndSwap(v, v-1) {
			return true
		}
	}
}

// refuseConnect is called from OnConnect: it writes the refusal CONNACK and reports whether the
// connection is to be ended.
func (f *Faults) refuseConnect(srv *mqtt.Server, cl *mqtt.Client) bool {
	if !take(&f.refuseAcks) {
		return false
	}
	code := packets.Code{Code: byte(f.connackCode.Load()), Reason: "refused by fault injection"}
	if code.Code < 0x80 {
		code = packets.ErrServerUnavailable
	}
	sendRefusal(srv, cl, code)
	return true
}

func (f *Faults) delayAck(pk packets.Packet) {
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp, packets.Suback, packets.Unsuback:
	default:
		return
	}
	start := time.Now()
	for {
		f.mu.Lock()
		d, changed := time.Duration(f.ackDelay.Load()), f.delayChanged
		f.mu.Unlock()
		left := d - time.Since(start)
		if left <= 0 {
			return
		}
		f.acksHeld.Add(1)
		t := time.NewTimer(left)
		select {
		case <-t.C:
		case <-changed:
		case <-f.b.closing():
			left = 0
		}
		t.Stop()
		f.acksHeld.Add(-1)
		if left == 0 {
			return
		}
	}
}

func (f *Faults) closeAll() { f.gate.resumeAll() }

// gate blocks the reads of paused connections.
type gate struct {
	mu     sync.Mutex
	paused map[*conn]chan struct{}
}

func (g *gate) pause(c *conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.paused[c]; !ok {
		g.paused[c] = make(chan struct{})
	}
}

func (g *gate) resume(c *conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ch, ok := g.paused[c]; ok {
		close(ch)
		delete(g.paused, c)
	}
}

func (g *gate) resumeAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for c, ch := range g.paused {
		close(ch)
		delete(g.paused, c)
	}
}

func (g *gate) wait(c *conn) error {
	g.mu.Lock()
	ch, ok := g.paused[c]
	g.mu.Unlock()
	if !ok {
		return nil
	}
	c.parked.Add(1)
	defer c.parked.Add(-1)
	select {
	case <-ch:
		return nil
	case <-c.close:
		return net.ErrClosed
	}
}
