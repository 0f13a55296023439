package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fennec-mqtt/fennec/packet"

	"github.com/coder/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// connectTimeout bounds the TLS handshake and the wait for CONNECT on a new connection. mochi
// applies the keepalive only after CONNECT, so without it an idle socket would be held forever.
const connectTimeout = 10 * time.Second

// listener implements mochi's listeners.Listener on a socket this package opened, so that the
// bound address is known, TLS handshakes are logged, and every connection is wrapped for identity
// and fault injection.
type listener struct {
	b    *Broker
	spec listenerSpec
	ln   net.Listener
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[*conn]struct{}
	http   *http.Server
}

func newListener(b *Broker, spec listenerSpec, ln net.Listener) *listener {
	ctx, cancel := context.WithCancel(context.Background())
	return &listener{b: b, spec: spec, ln: ln, log: b.log.With("listener", spec.name),
		ctx: ctx, cancel: cancel, conns: map[*conn]struct{}{}}
}

func (l *listener) ID() string              { return l.spec.name }
func (l *listener) Address() string         { return l.ln.Addr().String() }
func (l *listener) Protocol() string        { return l.spec.scheme }
func (l *listener) Init(*slog.Logger) error { return nil }
func (l *listener) isClosed() bool          { l.mu.Lock(); defer l.mu.Unlock(); return l.closed }
func (l *listener) wait()                   { l.wg.Wait() }
func (l *listener) track(c *conn) bool      { l.mu.Lock(); defer l.mu.Unlock(); return l.trackLocked(c) }
func (l *listener) untrack(c *conn)         { l.mu.Lock(); delete(l.conns, c); l.mu.Unlock() }
func (l *listener) trackLocked(c *conn) bool {
	ok := !l.closed
	if ok {
		l.conns[c] = struct{}{}
	}
	return ok
}

// Serve runs the accept loop (mochi calls it on its own goroutine).
func (l *listener) Serve(establish listeners.EstablishFn) {
	// Counted under the lock that Close takes first, so Close's wait never races this Add.
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.wg.Add(1)
	l.mu.Unlock()
	defer l.wg.Done()
	if l.spec.scheme == "ws" || l.spec.scheme == "wss" {
		l.serveWS(establish)
		return
	}
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if !l.isClosed() {
				l.log.Error("accept failed", "error", err)
			}
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.handle(nc, nil, establish)
		}()
	}
}

// handle runs one connection: refusal faults, TLS handshake, then mochi's establish, which returns
// when the client is gone.
func (l *listener) handle(nc net.Conn, state *tls.ConnectionState, establish listeners.EstablishFn) {
	remote := nc.RemoteAddr().String()
	if l.b.faults.takeRefusal() {
		l.log.Info("connection refused by fault injection", "remote", remote)
		nc.Close()
		return
	}
	if l.spec.tls != nil && state == nil {
		tc := tls.Server(nc, l.spec.tls)
		ctx, cancel := context.WithTimeout(l.ctx, connectTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			// Under TLS 1.3 a client learns that its certificate was refused only on its first
			// read after the handshake; this log line is the broker's side of that story.
			l.log.Warn("TLS handshake failed", "remote", remote, "error", err)
			tc.Close()
			return
		}
		st := tc.ConnectionState()
		state = &st
		l.log.Debug("TLS handshake done", "remote", remote, "version", tls.VersionName(st.Version),
			"cipher", tls.CipherSuiteName(st.CipherSuite), "client_identity", certIdentity(st.PeerCertificates))
		nc = tc
	}
	c := newConn(nc, l, state)
	if !l.track(c) {
		nc.Close()
		return
	}
	defer l.untrack(c)
	_ = nc.SetReadDeadline(time.Now().Add(connectTimeout)) // replaced by mochi's keepalive deadline after CONNECT
	err := establish(l.spec.name, c)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		l.log.Debug("connection ended", "remote", remote, "error", err)
	}
	if cl := c.client.Load(); cl != nil {
		l.b.hook.connectionEnded(cl, err)
	}
}

func (l *listener) serveWS(establish listeners.EstablishFn) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			Subprotocols:       []string{"mqtt"},
			InsecureSkipVerify: true, // a development broker: accept any Origin
		})
		if err != nil {
			l.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "error", err)
			return
		}
		if ws.Subprotocol() != "mqtt" {
			ws.Close(websocket.StatusPolicyViolation, "the mqtt subprotocol is required [MQTT-6.0.0-3]")
			return
		}
		nc := websocket.NetConn(l.ctx, ws, websocket.MessageBinary)
		l.handle(wsConn{Conn: nc, remote: r.RemoteAddr}, r.TLS, establish)
	})
	srv := &http.Server{Handler: mux, TLSConfig: l.spec.tls, ReadHeaderTimeout: connectTimeout,
		// HTTP/1.1 only: the WebSocket upgrade needs it (a browser offered h2 would fail).
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     slog.NewLogLogger(l.log.Handler(), slog.LevelDebug)}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.http = srv
	l.mu.Unlock()
	var err error
	if l.spec.tls != nil {
		err = srv.ServeTLS(l.ln, "", "")
	} else {
		err = srv.Serve(l.ln)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.log.Error("websocket listener failed", "error", err)
	}
}

// wsConn reports the HTTP peer's address (websocket.NetConn has none for the server side).
type wsConn struct {
	net.Conn
	remote string
}

type wsAddr string

func (a wsAddr) Network() string { return "websocket" }
func (a wsAddr) String() string  { return string(a) }

func (c wsConn) RemoteAddr() net.Addr { return wsAddr(c.remote) }

// Close stops accepting, lets mochi disconnect the clients it knows, then closes every remaining
// connection (those that never sent CONNECT, or whose reads are paused by a fault).
func (l *listener) Close(listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	srv := l.http
	l.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	l.ln.Close()
	// Not closeClients: mochi's (v2.7.9) Clients.GetByListener takes the clients' read lock
	// twice, which deadlocks when a client connects or leaves in between.
	l.disconnectClients()
	l.cancel()
	l.mu.Lock()
	conns := make([]*conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// conn wraps every client connection: it remembers the TLS state and protocol version and carries
// the fault-injection switches.
type conn struct {
	net.Conn
	wq   *writeQueue // every write goes through it (writeq.go)
	l    *listener
	tls  *tls.ConnectionState
	v311 atomic.Bool // the client speaks MQTT 3.1 or 3.1.1
	// client is mochi's client of this connection, once its CONNECT was read.
	client atomic.Pointer[mqtt.Client]
	gate   *gate
	// parked counts reads blocked by StopReading: once it is positive, nothing the client sends
	// reaches mochi until ResumeReading.
	parked atomic.Int32
	once   sync.Once
	close  chan struct{}
	// firstRead: the connection's first packet was read whole (at most MaxConnectSize) and
	// checked before mochi saw it (readFirst); it waits in ready.
	firstRead bool
	// After CONNECT every packet is read whole and checked with the codec too (validate):
	// in holds bytes read and not yet a whole packet, ready whole packets for mochi.
	ver   packet.Version // the CONNECT's; 0: not checked (MQTT 3.1, or an oversized packet)
	in    []byte
	ready []byte
	rerr  error // the read error behind ready
	pub   packet.Publish
	ack   packet.Puback
	// emptyWill: the CONNECT's will had a zero-length payload, which mochi refuses; mochi got a
	// one-byte stand-in, and OnWill publishes the will empty again.
	emptyWill bool
	// willProps: the will's properties mochi drops, encoded (will.go); "" for none.
	willProps string
	chunk     []byte
	// scramUser and scramFinal: the connection authenticated with SCRAM-SHA-256 as scramUser;
	// scramFinal is the server-final message its CONNACK carries (scram.go).
	scramUser, scramFinal string
	reauth                *scramState // a re-authentication between its AUTH 0x19 and final AUTH
}

// errConnectRefused ends a connection whose first packet the broker refused (readFirst).
var errConnectRefused = errors.New("broker: CONNECT refused before mochi read it")

// readFirst reads the connection's first packet whole and checks it, before mochi allocates or
// parses anything: a CONNECT longer than MaxConnectSize closes the connection as soon as its
// length is known, and a CONNECT that breaks the protocol is answered here (checkConnect).
// What it read is then what mochi reads.
func (c *conn) readFirst() error {
	c.firstRead = true
	var buf []byte
	c.chunk = make([]byte, 16<<10)
	chunk := c.chunk
	need := -1 // bytes of the whole first packet, once its length is known
	for need < 0 || len(buf) < need {
		if need < 0 && len(buf) >= 2 {
			length, n, ok := varint(buf[1:])
			switch {
			case !ok && len(buf) >= 5:
				return c.refuse("malformed remaining length in the first packet", nil)
			case ok:
				if max := int(c.l.b.opts.MaxConnectSize); buf[0]>>4 == 1 && length > max {
					c.l.log.Warn("connection closed: its CONNECT claims more than MaxConnectSize", "remote", c.RemoteAddr().String(),
						"claimed", length, "max", max)
					return errConnectRefused
				}
				need = 1 + n + length
				if buf[0]>>4 != 1 {
					c.ready = buf // not a CONNECT: mochi refuses it
					return nil
				}
				continue
			}
		}
		m, err := c.Conn.Read(chunk)
		buf = append(buf, chunk[:m]...)
		if err != nil {
			if len(buf) > 0 {
				c.ready = buf
				return nil // mochi meets the same end of stream
			}
			return err
		}
	}
	_, n, _ := varint(buf[1:])
	standIn, err := c.checkConnect(buf[0], buf[1+n:need])
	if err != nil {
		return err
	}
	lvl := buf[1+n+6]
	if lvl != 4 && lvl != 5 {
		c.ready = buf // MQTT 3.1: handed on unchecked
		return nil
	}
	c.ver = packet.Version(lvl)
	c.in = append([]byte(nil), buf[need:]...) // what the client sent behind CONNECT is checked too
	c.ready = buf[:need]
	if standIn != nil {
		c.ready = standIn
	}
	return c.extract()
}

// varint decodes an MQTT variable byte integer from b: value, bytes used, complete.
func varint(b []byte) (int, int, bool) {
	v, mult := 0, 1
	for i := 0; i < len(b) && i < 4; i++ {
		v += int(b[i]&0x7f) * mult
		if b[i]&0x80 == 0 {
			return v, i + 1, true
		}
		mult *= 128
	}
	return 0, 0, false
}

// checkConnect applies the rules mochi does not to a CONNECT (header, body), with the Fennec
// codec, which enforces them all. A refused CONNECT gets the answer the specification asks for,
// then the connection closes:
//   - MQTT 5: CONNACK with the codec's reason: 0x81 malformed, 0x82 protocol error (a property
//     given twice), 0x84 unsupported version; 0x8C for an Authentication Method, since the
//     broker supports none [MQTT-4.12.0-1];
//   - MQTT 3.1.1: CONNACK 0x01 for a protocol level it does not support [MQTT-3.1.2-2]; no
//     CONNACK for a malformed CONNECT (the reserved flag [MQTT-3.1.2-3], a password without a
//     user name [MQTT-3.1.2-22]): 3.1.1 has no code for it, the connection just closes;
//   - MQTT 3.1 (MQIsdp, level 3, which the codec does not decode): an empty client identifier is
//     refused with return code 0x02 (identifier rejected).
func (c *conn) checkConnect(header byte, body []byte) (standIn []byte, err error) {
	if len(body) >= 12 && string(body[2:8]) == "MQIsdp" && body[8] == 3 {
		// name (2+6), level, flags, keep alive (2), then the client identifier's length
		if len(body) >= 14 && body[12] == 0 && body[13] == 0 {
			c.wq.Write([]byte{0x20, 0x02, 0x00, 0x02})
			return nil, c.refuse("MQTT 3.1 CONNECT with an empty client identifier", nil)
		}
		return nil, nil
	}
	p, err := packet.Decode(packet.V5, header, body)
	if err == nil {
		cp := p.(*packet.Connect)
		c.willProps = willPropsOf(cp.Will) // mochi drops them: see will.go
		if cp.Version == packet.V5 && cp.Props.Has(packet.PropAuthenticationMethod) && cp.Props.AuthenticationMethod == SCRAMMethod && len(c.l.b.opts.SCRAM) > 0 {
			return c.scram(cp)
		}
		if cp.Version == packet.V5 && cp.Props.Has(packet.PropAuthenticationMethod) {
			c.writeConnack(packet.V5, packet.BadAuthenticationMethod)
			return nil, c.refuse("CONNECT with an Authentication Method, which this broker does not support [MQTT-4.12.0-1]", nil)
		}
		if cp.Will != nil && len(cp.Will.Payload) == 0 {
			// A zero-length will payload is allowed [MQTT-3.1.3-10] and the following statements, mochi refuses it ("will
			// flag no payload"): mochi gets the CONNECT with a one-byte stand-in, OnWill
			// publishes the will empty.
			cp.Will.Payload = []byte{0}
			if b, err := cp.Append(nil, cp.Version); err == nil {
				c.emptyWill = true
				return b, nil
			}
		}
		return nil, nil
	}
	var pe *packet.Error
	if !errors.As(err, &pe) {
		return nil, c.refuse("CONNECT refused", err)
	}
	level := byte(0)
	if len(body) >= 7 {
		level = body[6]
	}
	switch {
	case pe.Reason == packet.UnsupportedProtocolVersion && level < 5:
		c.wq.Write([]byte{0x20, 0x02, 0x00, 0x01}) // 3.1.1 CONNACK 0x01 [MQTT-3.1.2-2]
	case pe.Reason == packet.UnsupportedProtocolVersion:
		c.writeConnack(packet.V5, packet.UnsupportedProtocolVersion)
	case level == 5:
		c.writeConnack(packet.V5, pe.Reason)
	}
	return nil, c.refuse("CONNECT refused", err)
}

func (c *conn) writeConnack(v packet.Version, code packet.ReasonCode) {
	if b, err := (&packet.Connack{ReasonCode: code}).Append(nil, v); err == nil {
		c.wq.Write(b)
	}
}

func (c *conn) refuse(why string, err error) error {
	c.l.log.Warn("connection closed: "+why, "remote", c.RemoteAddr().String(), "error", err)
	return errConnectRefused
}

func newConn(nc net.Conn, l *listener, st *tls.ConnectionState) *conn {
	return &conn{Conn: nc, wq: newWriteQueue(nc), l: l, tls: st, gate: l.b.faults.gate, close: make(chan struct{})}
}

func (c *conn) Read(p []byte) (int, error) {
	if err := c.gate.wait(c); err != nil {
		return 0, err
	}
	if !c.firstRead {
		if err := c.readFirst(); err != nil {
			return 0, err
		}
	}
	if c.ver == 0 && len(c.ready) == 0 {
		n, err := c.Conn.Read(p)
		// A read already waiting when StopReading was called holds its data until ResumeReading.
		if werr := c.gate.wait(c); werr != nil {
			return 0, werr
		}
		return n, err
	}
	for len(c.ready) == 0 {
		if c.rerr != nil {
			return 0, c.rerr
		}
		if c.chunk == nil {
			c.chunk = make([]byte, 16<<10)
		}
		m, err := c.Conn.Read(c.chunk)
		if werr := c.gate.wait(c); werr != nil {
			return 0, werr
		}
		c.in = append(c.in, c.chunk[:m]...)
		if verr := c.extract(); verr != nil {
			return 0, verr
		}
		if err != nil {
			c.rerr = err
		}
		if c.ver == 0 && len(c.ready) == 0 {
			c.ready, c.in = c.in, nil // switched to pass-through
			if len(c.ready) == 0 && c.rerr != nil {
				return 0, c.rerr
			}
		}
	}
	n := copy(p, c.ready)
	c.ready = c.ready[n:]
	if len(c.ready) == 0 {
		c.ready = nil
	}
	return n, nil
}

// extract moves the whole packets at the start of c.in to c.ready, each checked (validate). A
// packet longer than MaxPacketSize is handed to mochi as it comes (mochi refuses it at its
// fixed header, MQTT 5: DISCONNECT 0x95), and checking stops there.
func (c *conn) extract() error {
	for len(c.in) >= 2 {
		length, n, ok := varint(c.in[1:])
		if !ok {
			if len(c.in) >= 5 {
				return c.violation(packet.MalformedPacket, "malformed remaining length", nil)
			}
			return nil
		}
		if uint64(1+n+length) > uint64(c.l.b.opts.MaxPacketSize) {
			c.ready = append(c.ready, c.in...)
			c.in, c.ver = nil, 0
			return nil
		}
		total := 1 + n + length
		if len(c.in) < total {
			return nil
		}
		if err := c.validate(c.in[0], c.in[1+n:total]); errors.Is(err, errSubscribeRefused) {
			c.in = c.in[total:] // answered here; the connection goes on
			continue
		} else if err != nil {
			return err
		}
		if len(c.ready) == 0 {
			c.ready = c.in[:total:total] // handed on without a copy; in goes on behind it
		} else {
			c.ready = append(c.ready, c.in[:total]...)
		}
		c.in = c.in[total:]
		if len(c.in) == 0 {
			c.in = nil
		}
	}
	return nil
}

// validate checks one packet from the client with the Fennec codec. mochi closes the connection
// on a packet it cannot decode without telling an MQTT 5 client why, and accepts some that
// break the protocol; here an MQTT 5 client gets DISCONNECT with the reason first
// [MQTT-4.13.1-1] (0x81 malformed, 0x82 protocol error), a 3.1.1 client the close.
func (c *conn) validate(header byte, body []byte) error {
	var err error
	switch packet.Type(header >> 4) {
	case packet.PUBLISH:
		err = c.pub.DecodeBody(c.ver, header, body)
	case packet.PUBACK:
		err = c.ack.DecodeBody(c.ver, header, body) // the commonest: no allocation
	case packet.SUBSCRIBE:
		var sp packet.Subscribe
		if err = sp.DecodeBody(c.ver, header, body); err == nil && len(sp.Subscriptions) > c.l.b.opts.MaxSubscribeFilters {
			return c.refuseSubscribe(&sp)
		}
	default:
		_, err = packet.Decode(c.ver, header, body)
	}
	if err == nil {
		return nil
	}
	code := packet.MalformedPacket
	var pe *packet.Error
	if errors.As(err, &pe) && pe.Reason >= 0x80 {
		code = pe.Reason
	}
	return c.violation(code, "packet refused", err)
}

// errSubscribeRefused marks a SUBSCRIBE answered by the broker itself, not handed to mochi.
var errSubscribeRefused = errors.New("broker: SUBSCRIBE refused")

// refuseSubscribe answers a SUBSCRIBE with more filters than MaxSubscribeFilters with a SUBACK
// that refuses every one (MQTT 5: 0x97 Quota exceeded; 3.1.1: 0x80) and does not hand it to
// mochi, whose handling of a SUBSCRIBE grows faster than its size (65,535 filters of "/" took
// 17 s and were granted).
func (c *conn) refuseSubscribe(sp *packet.Subscribe) error {
	code := packet.QuotaExceeded
	if c.ver != packet.V5 {
		code = 0x80
	}
	ack := &packet.Suback{PacketID: sp.PacketID, ReasonCodes: make([]packet.ReasonCode, len(sp.Subscriptions))}
	for i := range ack.ReasonCodes {
		ack.ReasonCodes[i] = code
	}
	if b, err := ack.Append(nil, c.ver); err == nil {
		c.wq.Write(b)
	}
	c.l.log.Warn("SUBSCRIBE refused: more filters than MaxSubscribeFilters", "remote", c.RemoteAddr().String(),
		"filters", len(sp.Subscriptions), "max", c.l.b.opts.MaxSubscribeFilters)
	return errSubscribeRefused
}

func (c *conn) violation(code packet.ReasonCode, why string, err error) error {
	if c.ver == packet.V5 {
		if b, e := (&packet.Disconnect{ReasonCode: code}).Append(nil, packet.V5); e == nil {
			c.wq.Write(b)
		}
	}
	return c.refuse(why, err)
}

// disconnect311 is the encoding of an MQTT DISCONNECT without properties.
var disconnect311 = []byte{0xE0, 0x00}

func (c *conn) Write(p []byte) (int, error) {
	// mochi writes DISCONNECT to every client it drops, but a server never sends DISCONNECT in
	// MQTT 3.1.1 (§3.14: it is sent from client to server); for such clients the connection is
	// simply closed.
	if c.v311.Load() && len(p) == 2 && p[0] == disconnect311[0] && p[1] == disconnect311[1] {
		return len(p), nil
	}
	return c.wq.Write(p)
}

func (c *conn) Close() error {
	c.once.Do(func() { close(c.close) })
	return c.wq.Close()
}

// disconnectClients ends the connections of this listener's clients as mochi's server shutdown
// does: MQTT 5 clients get DISCONNECT 0x8B (server shutting down).
func (l *listener) disconnectClients() {
	for _, cl := range l.b.srv.Clients.GetAll() {
		if cl.Net.Listener == l.spec.name && !cl.Closed() {
			_ = l.b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}
