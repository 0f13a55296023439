package mqttconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/fennec-mqtt/fennec/internal/connfast"
	"github.com/fennec-mqtt/fennec/packet"
)

// Event is one observation for a packet trace: a packet sent or received, or a fact about the
// connection (the TLS state after the handshake, the WebSocket upgrade, …).
type Event struct {
	Time     time.Time
	Outbound bool                 // the packet was sent (false: received)
	Packet   packet.Packet        // nil for a connection fact
	TLS      *tls.ConnectionState // set once, after the TLS handshake
	Note     string               // a connection fact in plain words
}

// Options configures Dial. Scheme, Addr and Connect are required.
type Options struct {
	// Scheme selects the transport: "mqtt" or "tcp" (plain TCP), "mqtts", "ssl" or "tls" (TLS),
	// "ws" (WebSocket), "wss" (WebSocket over TLS).
	Scheme string
	// Addr is the broker's host:port.
	Addr string
	// Path is the WebSocket request path; zero: "/mqtt".
	Path string
	// TLSConfig is used for mqtts and wss; nil: system roots and host name verification.
	// ServerName defaults to Addr's host.
	TLSConfig *tls.Config
	// Dial opens the network connection; nil: a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Connect is the CONNECT packet to send; its Version selects the protocol (zero: 5.0).
	Connect packet.Connect
	// Auth, with MQTT 5, runs enhanced authentication: its method and initial data go in
	// CONNECT, the broker's AUTH challenges before CONNACK are answered by it, and it checks the
	// data of the CONNACK (MQTT 5.0 section 4.12).
	Auth Authenticator
	// MaxPacketSize is the largest packet accepted from the broker; 0:
	// packet.DefaultMaxPacketSize (1 MiB). Announce it in Connect's properties on MQTT 5.
	MaxPacketSize uint32
	// WriteTimeout bounds one write to the network: a broker that stops reading fails the
	// connection with ErrWriteTimeout after 1 to 1.25 × WriteTimeout (the deadline is moved
	// in steps, not before every write). Zero: 1.5 × keep alive, or 30 s without keep alive.
	WriteTimeout time.Duration
	// QueueBytes bounds the bytes of packets queued by Send before it waits; zero: 256 KiB.
	QueueBytes int
	// OnPacket receives every packet after the CONNACK (PINGRESP included) on the reading
	// goroutine; it may block to apply back-pressure. Options may be shared by the successive
	// connections of one client: c tells them apart.
	OnPacket func(c *Conn, p packet.Packet)
	// Trace, when set, observes every packet in both directions and connection facts.
	Trace func(Event)
	// Logger receives debug records; nil: silent.
	Logger *slog.Logger
}

// The managed client's fast paths (internal/connfast): not part of a connection's API.
func init() {
	connfast.HandOff = func(c any) bool { return c.(*Conn).handOff() }
	connfast.Buffered = func(c any) int { return c.(*Conn).buffered() }
	connfast.Queue = func(c any, p packet.Packet, done func(error)) error { return c.(*Conn).queuePacket(p, done) }
	connfast.Flush = func(c any) { c.(*Conn).flush() }
	connfast.ReusePackets = func(c any) { c.(*Conn).rd.SetReuse(true) }
}

// Conn is one established MQTT connection: CONNECT has been accepted. Call Run on one
// goroutine to read packets; Send queues packets for the writing goroutine, which coalesces
// everything queued into one write.
type Conn struct {
	nc      net.Conn
	version packet.Version
	// readSinceArm is touched only by the reading goroutine (next to version: no padding).
	readSinceArm bool
	connack      string               // the broker's CONNACK, encoded: Connack decodes it (a decoded one is 320 bytes)
	tlsSt        *tls.ConnectionState // WebSocket over TLS only; plain TLS asks tlsConn
	tlsConn      *tls.Conn
	// The hooks of Dial's options: an established connection keeps only what it uses, not the
	// options or the CONNECT it was opened with.
	onPacket func(c *Conn, p packet.Packet)
	traceFn  func(Event)
	logger   *slog.Logger
	addr     string
	rd       *packet.Reader
	qa       *quickAcker

	keepAlive    time.Duration
	writeTimeout time.Duration
	maxOut       uint32 // the broker's Maximum Packet Size; 0: none

	mu       sync.Mutex
	queue    []item
	spare    []item
	qBytes   int
	qLimit   int
	spaceCh  chan struct{} // closed when the queue shrinks and someone waits
	closed   bool
	ending   bool // a DISCONNECT is queued: nothing may follow it
	writing  bool // a writer is running (the goroutine, or flush inline)
	closeErr error
	deferred int           // queuePacket calls not yet followed by flush
	sock     sockInfo      // the TCP socket under TLS or plain TCP; zero for WebSocket
	done     chan struct{} // made by the first Done, closed on Close
	writers  sync.WaitGroup

	sent, recv   atomic.Uint64
	awaiting     atomic.Int32 // replies the broker owes us (see deadlineReader)
	loop         atomic.Pointer[readLoop]
	readDL       time.Time // the read deadline last set (reading goroutine only)
	co           coalescer // receive coalescing (reading goroutine only; coalesce.go)
	writeDL      time.Time // the write deadline last set (the writer only)
	pingPending  atomic.Bool
	idleR, idleS int32 // touched only by the keep alive timer
	lastR, lastS uint64
	timer        *time.Timer
}

type item struct {
	p     packet.Packet // nil for an acknowledgement queued by SendAck
	done  func(error)
	ack   packet.Type
	ackID uint16
}

// packet returns the item's packet, building an acknowledgement's on demand (for Trace).
func (it *item) packet() packet.Packet {
	if it.p != nil {
		return it.p
	}
	switch it.ack {
	case packet.PUBACK:
		return &packet.Puback{PacketID: it.ackID}
	case packet.PUBREC:
		return &packet.Pubrec{PacketID: it.ackID}
	case packet.PUBREL:
		return &packet.Pubrel{PacketID: it.ackID}
	default:
		return &packet.Pubcomp{PacketID: it.ackID}
	}
}

// appendAck encodes an acknowledgement with reason Success and no properties: the same four
// bytes in MQTT 3.1.1 and 5.0, where the reason code and property length may be omitted.
func appendAck(dst []byte, t packet.Type, id uint16) []byte {
	h := byte(t) << 4
	if t == packet.PUBREL {
		h |= 0x02 // [MQTT-3.6.1-1]
	}
	return append(dst, h, 2, byte(id>>8), byte(id))
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Dial connects to the broker, sends CONNECT and waits for CONNACK, within ctx. A refused
// CONNECT returns the CONNACK and a *ConnectError wrapping a *ReasonError. Every error is a
// *ConnectError naming the phase that failed.
func Dial(ctx context.Context, o *Options) (*Conn, *packet.Connack, error) {
	v := o.Connect.Version
	if v == 0 {
		v = packet.V5
	}
	fail := func(ph Phase, err error) (*Conn, *packet.Connack, error) {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
		var ce *ConnectError
		if errors.As(err, &ce) {
			return nil, nil, err
		}
		return nil, nil, &ConnectError{Addr: o.Addr, Phase: ph, Err: err}
	}
	var nc net.Conn
	var st *tls.ConnectionState
	var err error
	switch strings.ToLower(o.Scheme) {
	case "mqtt", "tcp", "":
		nc, err = dialTCP(ctx, o)
	case "mqtts", "ssl", "tls", "mqtt+ssl", "tcps":
		nc, st, err = dialTLS(ctx, o)
	case "ws", "wss":
		nc, st, err = dialWS(ctx, o)
	default:
		return fail(PhaseTCP, fmt.Errorf("unknown scheme %q", o.Scheme))
	}
	if err != nil {
		return fail(PhaseTCP, err)
	}
	c := &Conn{nc: nc, version: v, onPacket: o.OnPacket, traceFn: o.Trace, logger: o.Logger,
		addr: o.Addr}
	if tc, ok := nc.(*tls.Conn); ok {
		c.tlsConn = tc // its state is read on demand: an idle connection keeps no copy
	} else {
		c.tlsSt = st
	}
	c.qLimit = o.QueueBytes
	if c.qLimit <= 0 {
		c.qLimit = 256 << 10
	}
	ack, err := c.handshake(ctx, o)
	if err != nil {
		nc.Close()
		if ack != nil {
			return nil, ack, &ConnectError{Addr: o.Addr, Phase: PhaseMQTT, Err: err}
		}
		return fail(PhaseMQTT, err)
	}
	if b, err := ack.Append(nil, c.version); err == nil {
		c.connack = string(b) // what decodes re-encodes (FuzzDecodeV5/V311)
	}
	c.keepAlive = time.Duration(o.Connect.KeepAlive) * time.Second
	if v == packet.V5 && ack.Props.Has(packet.PropServerKeepAlive) {
		// The broker's Server Keep Alive replaces ours [MQTT-3.2.2-21].
		c.keepAlive = time.Duration(ack.Props.ServerKeepAlive) * time.Second
	}
	if v == packet.V5 && ack.Props.Has(packet.PropMaximumPacketSize) {
		c.maxOut = ack.Props.MaximumPacketSize
	}
	c.writeTimeout = o.WriteTimeout
	if c.writeTimeout == 0 {
		c.writeTimeout = 30 * time.Second
		if c.keepAlive > 0 {
			c.writeTimeout = c.keepAlive * 3 / 2
		}
	}
	if c.keepAlive > 0 {
		c.mu.Lock()
		c.timer = time.AfterFunc(c.keepAlive/4, c.tick)
		c.mu.Unlock()
	}
	return c, ack, nil
}

func (c *Conn) trace(e Event) {
	if c.traceFn != nil {
		e.Time = time.Now()
		c.traceFn(e)
	}
}

func dialRaw(ctx context.Context, o *Options, addr string) (net.Conn, error) {
	var nc net.Conn
	var err error
	if o.Dial != nil {
		nc, err = o.Dial(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		nc, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			return nil, &ConnectError{Addr: addr, Phase: PhaseDNS, Err: err}
		}
		return nil, &ConnectError{Addr: addr, Phase: PhaseTCP, Err: err}
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return nc, nil
}

func dialTCP(ctx context.Context, o *Options) (net.Conn, error) { return dialRaw(ctx, o, o.Addr) }

func tlsClient(ctx context.Context, o *Options, nc net.Conn, addr string, alpn []string) (*tls.Conn, *tls.ConnectionState, error) {
	cfg := o.TLSConfig
	if cfg == nil || cfg.ServerName == "" || (len(alpn) > 0 && len(cfg.NextProtos) == 0) {
		// Copy only when something must be filled in; a caller that sets ServerName (see
		// PrepareTLS) shares one config across connections.
		cfg = PrepareTLS(cfg, addr, alpn)
	}
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, nil, &ConnectError{Addr: addr, Phase: PhaseTLS, Err: err}
	}
	st := tc.ConnectionState()
	return tc, &st, nil
}

// PrepareTLS returns a copy of cfg (nil: a zero config) with ServerName set to addr's host
// when empty and NextProtos set to alpn when empty.
func PrepareTLS(cfg *tls.Config, addr string, alpn []string) *tls.Config {
	if cfg == nil {
		cfg = &tls.Config{}
	} else {
		cfg = cfg.Clone()
	}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg.ServerName = host
	}
	if len(alpn) > 0 && len(cfg.NextProtos) == 0 {
		cfg.NextProtos = alpn
	}
	return cfg
}

func dialTLS(ctx context.Context, o *Options) (net.Conn, *tls.ConnectionState, error) {
	nc, err := dialRaw(ctx, o, o.Addr)
	if err != nil {
		return nil, nil, err
	}
	tc, st, err := tlsClient(ctx, o, nc, o.Addr, nil)
	if err != nil {
		return nil, nil, err
	}
	return tc, st, nil
}

func dialWS(ctx context.Context, o *Options) (net.Conn, *tls.ConnectionState, error) {
	secure := strings.EqualFold(o.Scheme, "wss")
	path := o.Path
	if path == "" {
		path = "/mqtt"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	scheme := "http"
	if secure {
		scheme = "https"
	}
	var st *tls.ConnectionState
	// The transport's dial functions keep a copy of the options: o itself (the caller's) does
	// not escape, so a TCP or TLS dial allocates no options.
	wo := new(Options)
	*wo = *o
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dialRaw(ctx, wo, wo.Addr) },
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			nc, err := dialRaw(ctx, wo, wo.Addr)
			if err != nil {
				return nil, err
			}
			tc, s, err := tlsClient(ctx, wo, nc, wo.Addr, []string{"http/1.1"})
			if err != nil {
				return nil, err
			}
			st = s
			return tc, nil
		},
		DisableCompression: true,
		ForceAttemptHTTP2:  false,
	}
	defer tr.CloseIdleConnections()
	// The Host header leaves out the scheme's default port, as browsers send it: a URL signed
	// for the host (AWS SigV4) is checked against the header.
	hostHeader := o.Addr
	if h, p, err := net.SplitHostPort(o.Addr); err == nil && (secure && p == "443" || !secure && p == "80") {
		hostHeader = h
		if strings.Contains(h, ":") {
			hostHeader = "[" + h + "]"
		}
	}
	ws, resp, err := websocket.Dial(ctx, scheme+"://"+hostHeader+path, &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: tr},
		Subprotocols: []string{"mqtt"},
	})
	if err != nil {
		var ce *ConnectError
		if errors.As(err, &ce) {
			return nil, nil, ce
		}
		if resp != nil {
			err = fmt.Errorf("HTTP %s: %w", resp.Status, err)
		}
		return nil, nil, &ConnectError{Addr: o.Addr, Phase: PhaseWebSocket, Err: err}
	}
	if sp := ws.Subprotocol(); sp != "mqtt" {
		ws.Close(websocket.StatusProtocolError, "subprotocol mqtt required")
		return nil, nil, &ConnectError{Addr: o.Addr, Phase: PhaseWebSocket, Err: fmt.Errorf("server did not accept the WebSocket subprotocol \"mqtt\" (got %q)", sp)}
	}
	return websocket.NetConn(context.Background(), ws, websocket.MessageBinary), st, nil
}

// handshake writes CONNECT and reads CONNACK within ctx.
func (c *Conn) handshake(ctx context.Context, o *Options) (*packet.Connack, error) {
	if st := c.TLSState(); st != nil && c.traceFn != nil {
		c.trace(Event{TLS: st, Note: describeTLS(st)})
	}
	if dl, ok := ctx.Deadline(); ok {
		c.nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		stop()
		c.nc.SetDeadline(time.Time{})
	}()
	auth := o.Auth
	if c.version != packet.V5 {
		auth = nil
	}
	conn, err := c.connectPacket(o, auth)
	if err != nil {
		return nil, err
	}
	if err := c.sendConnect(ctx, conn); err != nil {
		return nil, err
	}
	c.startReading(o)
	p, err := c.readConnack()
	if err == nil && auth != nil {
		p, err = c.authExchange(ctx, auth, p)
	}
	if err != nil {
		return nil, connackError(ctx, err, c.version)
	}
	c.awaiting.Store(0)
	c.trace(Event{Packet: p})
	return checkConnack(p, auth, c.version)
}

// connectPacket is the CONNECT of the options, with the first data of an MQTT 5 enhanced
// authentication method (auth, nil for none).
func (c *Conn) connectPacket(o *Options, auth Authenticator) (*packet.Connect, error) {
	conn := o.Connect
	conn.Version = c.version
	if auth != nil {
		data, err := auth.Initial()
		if err != nil {
			return nil, fmt.Errorf("authentication %s: %w", auth.Method(), err)
		}
		conn.Props.AuthenticationMethod = auth.Method()
		conn.Props.Set(packet.PropAuthenticationMethod)
		if data != nil {
			conn.Props.AuthenticationData = data
			conn.Props.Set(packet.PropAuthenticationData)
		}
	}
	return &conn, nil
}

// sendConnect writes CONNECT, tracing it without the password.
func (c *Conn) sendConnect(ctx context.Context, conn *packet.Connect) error {
	buf, err := conn.Append(nil, c.version)
	if err != nil {
		return err
	}
	if c.traceFn != nil {
		// The trace never carries the password: HasPassword stays, the bytes do not.
		shown := *conn
		note := ""
		if shown.HasPassword {
			shown.Password = nil
			note = "password redacted"
		}
		c.trace(Event{Outbound: true, Packet: &shown, Note: note})
	}
	if _, err := c.nc.Write(buf); err != nil {
		return ctxOr(ctx, err)
	}
	return nil
}

// startReading sets up the socket helpers and the one reader of the connection, with CONNACK
// awaited.
func (c *Conn) startReading(o *Options) {
	c.qa = newQuickAcker(c.nc)
	c.sock = sockInfoOf(c.qa)
	c.awaiting.Store(1) // CONNACK
	c.qa.arm()
	// The same reader serves the whole connection: the broker may send packets right
	// behind CONNACK (a persistent session's queued messages).
	maxIn := o.MaxPacketSize
	if maxIn == 0 {
		maxIn = packet.DefaultMaxPacketSize
	}
	c.rd = packet.NewReader(deadlineReader{c}, maxIn)
	// An MQTT 3.1.1 broker cannot be told our Maximum Packet Size: a larger PUBLISH is its
	// right, not a violation. It is skipped as it arrives and handed to OnPacket as a
	// *packet.OversizePublish, for the client to acknowledge and count; ending the connection
	// would have the broker send it again at every reconnect. (An MQTT 5 broker was told, and
	// one that sends a larger packet ends the connection with 0x95.)
	c.rd.SetSkipOversize(c.version == packet.V311)
}

// authExchange answers the broker's AUTH challenges (MQTT 5.0 section 4.12) until it sends
// something else, at most maxAuthRounds times; p is the first packet after CONNECT.
func (c *Conn) authExchange(ctx context.Context, auth Authenticator, p packet.Packet) (packet.Packet, error) {
	var err error
	for rounds := 0; err == nil && rounds < maxAuthRounds; rounds++ {
		a, ok := p.(*packet.Auth)
		if !ok {
			break
		}
		c.trace(Event{Packet: p})
		if a.ReasonCode != packet.ContinueAuthentication || a.Props.AuthenticationMethod != auth.Method() {
			return nil, &ProtocolError{Packet: packet.AUTH, Msg: fmt.Sprintf("broker sent AUTH %s for method %q during the authentication of %q [MQTT-4.12.0-2]", a.ReasonCode, a.Props.AuthenticationMethod, auth.Method())}
		}
		data, aerr := auth.Challenge(a.Props.AuthenticationData)
		if aerr != nil {
			return nil, fmt.Errorf("authentication %s: %w", auth.Method(), aerr)
		}
		resp := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
		resp.Props.AuthenticationMethod = auth.Method()
		resp.Props.Set(packet.PropAuthenticationMethod)
		resp.Props.AuthenticationData = data
		resp.Props.Set(packet.PropAuthenticationData)
		out, eerr := resp.Append(nil, c.version)
		if eerr != nil {
			return nil, eerr
		}
		c.trace(Event{Outbound: true, Packet: resp})
		if _, werr := c.nc.Write(out); werr != nil {
			return nil, ctxOr(ctx, werr)
		}
		p, err = c.rd.ReadPacket(c.version)
	}
	return p, err
}

// connackError is the error of a handshake whose CONNACK could not be read.
func connackError(ctx context.Context, err error, v packet.Version) error {
	var re *ReasonError
	if errors.As(err, &re) {
		return err
	}
	if errors.Is(err, io.EOF) {
		// Brokers close without a CONNACK for many reasons (an ACL or policy that refuses
		// the client ID or certificate, a takeover, a protocol version they reject without
		// saying so): the error states the fact and leaves the cause to who knows the broker.
		return fmt.Errorf("broker closed the connection after CONNECT (MQTT %v) without a CONNACK: %w", v, err)
	}
	if isDecodeErr(err) {
		return &ProtocolError{Msg: "bad packet instead of CONNACK", Err: err}
	}
	return fmt.Errorf("no CONNACK: %w", ctxOr(ctx, err))
}

// checkConnack returns the CONNACK p, or an error when p is not one, refuses the connection,
// or fails the authentication method's last check.
func checkConnack(p packet.Packet, auth Authenticator, v packet.Version) (*packet.Connack, error) {
	ack, ok := p.(*packet.Connack)
	if !ok {
		return nil, &ProtocolError{Packet: p.Type(), Msg: fmt.Sprintf("broker sent %v before CONNACK [MQTT-3.2.0-1]", p.Type())}
	}
	if ack.ReasonCode != 0 {
		return ack, &ReasonError{Packet: packet.CONNACK, Code: ack.ReasonCode, Version: v, Reason: ack.Props.ReasonString, ServerReference: ack.Props.ServerReference}
	}
	if auth != nil {
		if err := auth.Finish(ack.Props.AuthenticationData); err != nil {
			return ack, fmt.Errorf("authentication %s: the broker accepted, but its final data does not verify: %w", auth.Method(), err)
		}
	}
	return ack, nil
}

// maxAuthRounds bounds the AUTH exchanges before CONNACK: a broker that challenges for ever
// does not keep the client.
const maxAuthRounds = 16

// Authenticator is an MQTT 5 enhanced authentication method (MQTT 5.0 section 4.12).
type Authenticator interface {
	// Method is the Authentication Method, e.g. "SCRAM-SHA-256".
	Method() string
	// Initial is the Authentication Data of CONNECT (or of AUTH 0x19 when re-authenticating);
	// nil for none.
	Initial() ([]byte, error)
	// Challenge answers the broker's AUTH 0x18 (Continue authentication) data.
	Challenge(data []byte) ([]byte, error)
	// Finish checks the Authentication Data of the CONNACK (or of AUTH 0x00 after
	// re-authentication), e.g. the server's proof in SCRAM.
	Finish(data []byte) error
}

// readConnack reads the first packet. A broker without MQTT 5 answers an MQTT 5 CONNECT with
// an MQTT 3.1.1 CONNACK, return code 1 (unacceptable protocol version) [MQTT-3.1.2-2]: two
// bytes that do not decode as an MQTT 5 CONNACK, reported as the refusal they are.
func (c *Conn) readConnack() (packet.Packet, error) {
	if c.version != packet.V5 {
		return c.rd.ReadPacket(c.version)
	}
	header, body, err := c.rd.ReadRawAs(c.version)
	if err != nil {
		return nil, err
	}
	if header == byte(packet.CONNACK)<<4 && len(body) == 2 && body[1] == 1 {
		c.trace(Event{Note: "MQTT 3.1.1 CONNACK, return code 1 (unacceptable protocol version): the broker does not speak MQTT 5"})
		return nil, &ReasonError{Packet: packet.CONNACK, Code: 1, Version: packet.V311, Reason: "the broker answered with an MQTT 3.1.1 CONNACK: it does not speak MQTT 5"}
	}
	return packet.Decode(c.version, header, body)
}

func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %v", ctx.Err(), err)
	}
	if _, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: %v", context.DeadlineExceeded, err)
	}
	return err
}

func isDecodeErr(err error) bool {
	return errors.Is(err, packet.ErrMalformed) || errors.Is(err, packet.ErrProtocol) || errors.Is(err, packet.ErrPacketTooLarge)
}

func describeTLS(st *tls.ConnectionState) string {
	s := fmt.Sprintf("TLS %s, %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
	if st.NegotiatedProtocol != "" {
		s += ", ALPN " + st.NegotiatedProtocol
	}
	if st.DidResume {
		s += ", resumed"
	}
	if len(st.PeerCertificates) > 0 {
		s += ", server certificate " + st.PeerCertificates[0].Subject.String()
	}
	return s
}

// Version returns the protocol version of the connection.
func (c *Conn) Version() packet.Version { return c.version }

// Connack returns the broker's CONNACK, decoded anew on each call: the caller may keep or
// change it. The connection keeps it encoded, a few bytes instead of a decoded packet.
func (c *Conn) Connack() *packet.Connack {
	p, err := packet.Unmarshal(c.version, []byte(c.connack))
	if err != nil {
		return nil
	}
	ack, _ := p.(*packet.Connack)
	return ack
}

// TLSState returns the TLS connection state, or nil for a plain connection.
func (c *Conn) TLSState() *tls.ConnectionState {
	if c.tlsConn != nil {
		st := c.tlsConn.ConnectionState()
		return &st
	}
	return c.tlsSt
}

// NetConn returns the underlying network connection (escape hatch).
func (c *Conn) NetConn() net.Conn { return c.nc }

// KeepAlive returns the keep alive in force (the broker's Server Keep Alive when it sent one).
func (c *Conn) KeepAlive() time.Duration { return c.keepAlive }

// MaxPacketSize returns the broker's Maximum Packet Size, 0 when it announced none.
func (c *Conn) MaxPacketSize() uint32 { return c.maxOut }

// Done is closed when the connection is closed. The channel is made by the first call: an idle
// connection nobody waits on keeps none.
func (c *Conn) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.closed {
			close(c.done)
		}
	}
	return c.done
}

// Err returns why the connection closed, nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

// ErrHandedOff is returned by Run when the managed client's hand-off (internal/connfast) moved reading to another goroutine.
var ErrHandedOff = errors.New("mqttconn: reading was handed off to another goroutine")

// readLoop is the state of one Run call.
type readLoop struct{ state atomic.Int32 }

const (
	loopReading   = iota // reading or decoding
	loopCallback         // inside Options.OnPacket
	loopHandedOff        // handOff was called during OnPacket
)

// handOff lets OnPacket keep the reading goroutine (to run a long task on it) while reading
// goes on elsewhere: called while OnPacket runs, from any goroutine, it makes Run return
// ErrHandedOff as soon as OnPacket returns, without reading further; the caller must then call
// Run on another goroutine, which continues with the next packet. It reports false, changing
// nothing, when OnPacket is not running or reading was already handed off.
func (c *Conn) handOff() bool {
	l := c.loop.Load()
	return l != nil && l.state.CompareAndSwap(loopCallback, loopHandedOff)
}

// buffered reports how many bytes of further packets were already read from the network and
// wait in the connection's read buffer: more packets follow at once. Call it only from
// OnPacket, on the reading goroutine.
func (c *Conn) buffered() int { return c.rd.Buffered() }

// Run reads packets and hands them to Options.OnPacket until the connection fails or is
// closed; it returns the cause. Call it once, and again only after it returned ErrHandedOff.
func (c *Conn) Run() error {
	l := &readLoop{}
	c.loop.Store(l)
	for {
		p, err := c.rd.ReadPacket(c.version)
		if err != nil {
			if rerr := c.readError(err); errors.Is(rerr, ErrProtocolViolation) {
				c.Fail(rerr)
			} else {
				c.Close(rerr)
			}
			c.writers.Wait()
			return c.Err()
		}
		c.recv.Add(1)
		if isReply(p) {
			c.replied()
		}
		c.trace(Event{Packet: p})
		switch p.(type) {
		case *packet.Pingresp:
			c.pingPending.Store(false)
		case *packet.Connack:
			c.Fail(&ProtocolError{Packet: packet.CONNACK, Msg: "broker sent a second CONNACK [MQTT-3.2.0-2]"})
			continue
		}
		if c.onPacket != nil {
			l.state.Store(loopCallback)
			c.onPacket(c, p)
			if !l.state.CompareAndSwap(loopCallback, loopReading) {
				return ErrHandedOff
			}
		}
	}
}

func (c *Conn) readError(err error) error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil // Close's error stands
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ErrKeepAliveTimeout
	case errors.Is(err, packet.ErrPacketTooLarge):
		return &ProtocolError{Msg: "packet larger than our Maximum Packet Size", Err: err}
	case isDecodeErr(err):
		msg := "malformed packet"
		if errors.Is(err, packet.ErrProtocol) {
			msg = "invalid packet" // well formed, but against a rule of the protocol
		}
		return &ProtocolError{Msg: msg, Err: err}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: broker closed the connection", ErrConnectionLost)
	}
	return fmt.Errorf("%w: %v", ErrConnectionLost, err)
}

// deadlineReader keeps the read deadline between 1.25 and 1.5 × keep alive ahead of every
// read: a silent broker (or a half-open TCP connection) is detected within 1.5 × keep alive
// even when nothing is being sent, and a live one answers PINGREQ well before.
//
// It also re-arms TCP_QUICKACK before a read that may block, but only while the broker owes
// us a reply (CONNACK, PUBACK, SUBACK, PINGRESP, …). That is the one case where our delayed
// ACK can stall the connection: a broker without TCP_NODELAY holds the reply behind Nagle
// until the packet we just read is acknowledged. When nothing is awaited the ACK rides on our
// next packet: that saves a setsockopt and an extra ACK segment per read. (Skipping it also
// while a packet of ours is queued saved CPU in QoS 1 bursts but cost about 8 % of the QoS 1
// throughput over TLS with a Receive Maximum of 20: prompt ACKs keep the window moving.)
type deadlineReader struct{ c *Conn }

func (r deadlineReader) Read(p []byte) (int, error) {
	c := r.c
	if c.readSinceArm {
		c.readSinceArm = false
		if c.awaiting.Load() > 0 {
			c.qa.arm()
		}
	}
	now := time.Now()
	if ka := c.keepAlive; ka > 0 && c.co.lowat == 0 {
		// Moved only when it would move by more than ¼ K: every read still starts with at
		// least 1.25 K and at most 1.5 K to go, without a deadline update per read.
		if dl := c.keepAliveDeadline(now); dl.Sub(c.readDL) > ka/4 {
			c.nc.SetReadDeadline(dl)
			c.readDL = dl
		}
	}
	n, err := c.readCoalesced(p, now)
	if n > 0 {
		c.readSinceArm = true
	}
	return n, err
}

// keepAliveDeadline is the read deadline of a read that starts at now: 1.5 × keep alive.
func (c *Conn) keepAliveDeadline(now time.Time) time.Time { return now.Add(c.keepAlive * 3 / 2) }

// expectsReply reports whether the broker answers p (a packet we send) with a packet.
func expectsReply(p packet.Packet) bool {
	switch p := p.(type) {
	case *packet.Publish:
		return p.QoS > 0
	case *packet.Subscribe, *packet.Unsubscribe, *packet.Pingreq, *packet.Pubrec, *packet.Pubrel:
		return true
	}
	return false
}

// isReply reports whether p (a packet received) answers one of ours.
func isReply(p packet.Packet) bool {
	switch p.(type) {
	case *packet.Puback, *packet.Pubrec, *packet.Pubrel, *packet.Pubcomp, *packet.Suback, *packet.Unsuback, *packet.Pingresp:
		return true
	}
	return false
}

// replied counts a reply received; the count never drops below zero.
func (c *Conn) replied() {
	for {
		n := c.awaiting.Load()
		if n <= 0 || c.awaiting.CompareAndSwap(n, n-1) {
			return
		}
	}
}

// tick runs every keep alive / 4. It sends PINGREQ when nothing was sent or nothing was
// received for about ¾ of the keep alive, so a PINGREQ goes out at least once per keep alive
// [MQTT-3.1.2-23] and a live broker always answers before the 1.5 × keep alive read deadline.
func (c *Conn) tick() {
	s, r := c.sent.Load(), c.recv.Load()
	if s == c.lastS {
		c.idleS++
	} else {
		c.idleS, c.lastS = 0, s
	}
	if r == c.lastR {
		c.idleR++
	} else {
		c.idleR, c.lastR = 0, r
	}
	if (c.idleS >= 3 || c.idleR >= 3) && !c.pingPending.Load() {
		c.pingPending.Store(true)
		c.SendNow(&packet.Pingreq{}, nil)
	}
	c.mu.Lock()
	if !c.closed {
		c.timer.Reset(c.keepAlive / 4)
	}
	c.mu.Unlock()
}

func size(p packet.Packet) int {
	if pub, ok := p.(*packet.Publish); ok {
		return len(pub.Payload) + len(pub.Topic) + 16
	}
	return 16
}

// Send queues p for writing, waiting within ctx while more than QueueBytes are queued. done,
// when not nil, is called once: with nil after p was written, or with the error that stopped
// it (the connection closed, p too large for the broker).
func (c *Conn) Send(ctx context.Context, p packet.Packet, done func(error)) error {
	n := size(p)
	c.mu.Lock()
	for !c.closed && c.qBytes > 0 && c.qBytes+n > c.qLimit {
		if c.spaceCh == nil {
			c.spaceCh = make(chan struct{})
		}
		ch := c.spaceCh
		c.mu.Unlock()
		select {
		case <-ch: // also closed by Close
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
	}
	return c.enqueueLocked(p, done, n)
}

// SendNow queues p without waiting for queue space; for acknowledgements and control
// packets, whose number the protocol bounds.
func (c *Conn) SendNow(p packet.Packet, done func(error)) error {
	c.mu.Lock()
	return c.enqueueLocked(p, done, size(p))
}

// SendAck queues a PUBACK, PUBREC, PUBREL or PUBCOMP for packet ID id with reason Success and
// no properties, like SendNow but without a packet value to allocate.
func (c *Conn) SendAck(t packet.Type, id uint16) error {
	switch t {
	case packet.PUBACK, packet.PUBREC, packet.PUBREL, packet.PUBCOMP:
	default:
		return fmt.Errorf("mqttconn: SendAck: %v is not an acknowledgement", t)
	}
	if id == 0 {
		return fmt.Errorf("mqttconn: SendAck: %v with packet ID 0 [MQTT-2.2.1-3]", t)
	}
	c.mu.Lock()
	return c.enqueueItemLocked(item{ack: t, ackID: id}, 16)
}

// queuePacket queues p like SendNow but does not start the writing goroutine: the caller must call
// flush afterwards. It lets a caller that holds its own lock queue packets and have them
// written once that lock is released.
func (c *Conn) queuePacket(p packet.Packet, done func(error)) error {
	c.mu.Lock()
	c.deferred++
	return c.enqueueLocked(p, done, size(p))
}

// inlineMax is the most queued bytes flush writes on the calling goroutine.
const inlineMax = 8 << 10

// flush follows queuePacket. When no writer is running, at most a few KiB are queued and the
// socket's send buffer is empty, it writes on the calling goroutine: such a write cannot block,
// and it saves the hand-off to the writing goroutine on the path of a one-at-a-time Publish.
// Otherwise the writing goroutine writes. flush never waits for the broker.
func (c *Conn) flush() {
	c.mu.Lock()
	// One flush writes everything queued so far, however many queuePacket calls put it there
	// (the client's pump may queue several under its lock): counting off one would leave the
	// rest, and every later write, waiting for flushes that never come.
	c.deferred = 0
	if c.writing || c.closed || len(c.queue) == 0 || c.deferred > 0 {
		c.mu.Unlock()
		return
	}
	c.writing = true
	c.writers.Add(1)
	inline := c.qBytes <= inlineMax && c.sock.sendQueueEmpty()
	c.mu.Unlock()
	if inline {
		if !c.writeBatch() {
			c.writers.Done()
			return
		}
		c.mu.Lock()
		if len(c.queue) == 0 && !c.closed {
			c.writing = false
			c.mu.Unlock()
			c.writers.Done()
			return
		}
		c.mu.Unlock()
	}
	go c.writer()
}

func (c *Conn) enqueueLocked(p packet.Packet, done func(error), n int) error {
	return c.enqueueItemLocked(item{p: p, done: done}, n)
}

func (c *Conn) enqueueItemLocked(it item, n int) error {
	if c.closed || c.ending {
		err := c.closeErrLocked()
		c.mu.Unlock()
		return err
	}
	if _, ok := it.p.(*packet.Disconnect); ok {
		c.ending = true // DISCONNECT is the last packet sent [MQTT-3.14.4-1]
	}
	c.queue = append(c.queue, it)
	c.qBytes += n
	if !c.writing && c.deferred == 0 {
		// The writer runs only while there is something to write: an idle connection has
		// no writing goroutine.
		c.writing = true
		c.writers.Add(1)
		go c.writer()
	}
	c.mu.Unlock()
	return nil
}

func (c *Conn) closeErrLocked() error {
	if c.closeErr != nil {
		return c.closeErr
	}
	return ErrClosed
}

func (c *Conn) writer() {
	defer c.writers.Done()
	for c.writeBatch() {
	}
}

// writeBatch writes everything queued with one write. It reports false, after clearing
// c.writing, when nothing was queued or the connection is closed.
func (c *Conn) writeBatch() bool {
	batch, ok := c.takeBatch()
	if !ok {
		return false
	}
	bp := bufPool.Get().(*[]byte)
	buf, vec := c.encodeBatch(batch, (*bp)[:0])
	werr := c.writeOut(buf, vec)
	if cap(buf) <= 64<<10 {
		*bp = buf[:0]
		bufPool.Put(bp)
	}
	for i := range batch {
		if d := batch[i].done; d != nil {
			d(werr)
		}
		batch[i] = item{}
	}
	c.mu.Lock()
	if c.spare == nil && cap(batch) <= 1024 {
		c.spare = batch[:0]
	}
	c.mu.Unlock()
	return true
}

// takeBatch takes everything queued, waking writers that wait for space; false when there is
// nothing (the writer stops) or the connection is closed (the queue fails).
func (c *Conn) takeBatch() ([]item, bool) {
	c.mu.Lock()
	if c.closed {
		c.writing = false
		c.mu.Unlock()
		c.failQueue()
		return nil, false
	}
	if len(c.queue) == 0 {
		c.writing = false
		c.mu.Unlock()
		return nil, false
	}
	batch := c.queue
	c.queue, c.spare = c.spare[:0], nil
	c.qBytes = 0
	if c.spaceCh != nil {
		close(c.spaceCh)
		c.spaceCh = nil
	}
	c.mu.Unlock()
	return batch, true
}

// encodeBatch encodes the batch into buf; a large payload is not copied but goes into vec
// (nil when there is none) beside the encoded parts. An item that cannot be sent (it does not
// encode, or exceeds the broker's Maximum Packet Size) is completed with its error and dropped.
func (c *Conn) encodeBatch(batch []item, buf []byte) ([]byte, net.Buffers) {
	var vec net.Buffers // set when a large payload is written from the caller's slice
	seg := 0            // start of the part of buf not yet in vec
	for i := range batch {
		it := &batch[i]
		start := len(buf)
		var err error
		var payload []byte
		if it.p == nil {
			buf = appendAck(buf, it.ack, it.ackID)
		} else if pub, ok := it.p.(*packet.Publish); ok && len(pub.Payload) >= vectorMin {
			// Large payloads are not copied: the head goes into buf, the payload is written
			// from the caller's slice (writev on TCP).
			payload = pub.Payload
			buf, err = pub.AppendHead(buf, c.version)
		} else {
			buf, err = it.p.Append(buf, c.version)
		}
		if n := len(buf) - start + len(payload); err == nil && c.maxOut > 0 && uint32(n) > c.maxOut {
			// [MQTT-3.1.2-24]: never send a packet above the broker's Maximum Packet Size.
			err = fmt.Errorf("%w (%d bytes, limit %d)", ErrPacketTooLarge, n, c.maxOut)
		}
		if err != nil {
			buf = buf[:start]
			if it.done != nil {
				it.done(err)
				it.done = nil
			}
			it.p = nil
			continue
		}
		if payload != nil {
			vec = append(vec, buf[seg:], payload)
			seg = len(buf)
		}
		if it.p == nil && (it.ack == packet.PUBREC || it.ack == packet.PUBREL) || it.p != nil && expectsReply(it.p) {
			c.awaiting.Add(1) // before the write: the reply cannot come earlier
		}
		if c.traceFn != nil {
			c.trace(Event{Outbound: true, Packet: it.packet()})
		}
	}
	if vec != nil {
		vec = append(vec, buf[seg:])
	}
	return buf, vec
}

// writeOut writes the encoded batch (vec when set, else buf) with one call; a failure closes
// the connection and is returned as the connection's error.
func (c *Conn) writeOut(buf []byte, vec net.Buffers) error {
	if len(buf) == 0 {
		return nil
	}
	// Moved only when it would move by more than ¼ of the timeout: each write gets
	// between 1 and 1.25 × WriteTimeout, without a deadline update per write.
	if dl := time.Now().Add(c.writeTimeout * 5 / 4); dl.Sub(c.writeDL) > c.writeTimeout/4 {
		c.nc.SetWriteDeadline(dl)
		c.writeDL = dl
	}
	var werr error
	if vec != nil {
		_, werr = vec.WriteTo(c.nc)
	} else {
		_, werr = c.nc.Write(buf)
	}
	c.sent.Add(1)
	if werr != nil {
		if errors.Is(werr, os.ErrDeadlineExceeded) {
			werr = ErrWriteTimeout
		} else {
			werr = fmt.Errorf("%w: write: %v", ErrConnectionLost, werr)
		}
		c.Close(werr)
		werr = c.Err()
	}
	return werr
}

func (c *Conn) failQueue() {
	c.mu.Lock()
	q := c.queue
	c.queue = nil
	err := c.closeErrLocked()
	c.mu.Unlock()
	for _, it := range q {
		if it.done != nil {
			it.done(err)
		}
	}
}

// Close closes the connection with cause err (nil: ErrClosed); queued packets fail.
func (c *Conn) Close(err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if err == nil {
		err = ErrClosed
	}
	c.closed, c.closeErr = true, err
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.spaceCh != nil {
		close(c.spaceCh)
		c.spaceCh = nil
	}
	if c.done != nil {
		close(c.done)
	}
	idle := !c.writing
	c.mu.Unlock()
	c.nc.Close()
	if idle {
		c.failQueue() // a running writer fails the queue itself
	}
	if c.logger != nil && !errors.Is(err, ErrClosed) {
		c.logger.Debug("mqtt connection closed", "addr", c.addr, "err", err)
	}
}

// Fail closes the connection because the broker broke the protocol: for MQTT 5 it first sends
// a DISCONNECT whose reason code says why [MQTT-4.13.1-1], then closes with err.
func (c *Conn) Fail(err error) {
	if c.version == packet.V5 {
		code := packet.ProtocolError
		var pe *ProtocolError
		if errors.As(err, &pe) && pe.Reason != 0 {
			code = pe.Reason
		} else if errors.As(err, &pe) && pe.Err != nil {
			switch {
			case errors.Is(pe.Err, packet.ErrPacketTooLarge):
				code = packet.PacketTooLarge
			case errors.Is(pe.Err, packet.ErrMalformed):
				code = packet.MalformedPacket
			}
		}
		var re *ReceiveMaximumError
		if errors.As(err, &re) {
			code = packet.ReceiveMaximumExceeded
		}
		sent := make(chan struct{})
		if c.SendNow(&packet.Disconnect{ReasonCode: code}, func(error) { close(sent) }) == nil {
			select {
			case <-sent:
			case <-time.After(time.Second):
			}
		}
	}
	c.Close(err)
}

// Disconnect sends d (nil: a normal DISCONNECT) and closes the connection, within ctx.
func (c *Conn) Disconnect(ctx context.Context, d *packet.Disconnect) error {
	if d == nil {
		d = &packet.Disconnect{}
	}
	sent := make(chan error, 1)
	err := c.SendNow(d, func(err error) { sent <- err })
	if err == nil {
		select {
		case err = <-sent:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	c.Close(ErrClosed)
	return err
}

// ReceiveMaximumError: the broker sent more unacknowledged QoS 1/2 PUBLISH packets than our
// Receive Maximum allows [MQTT-3.3.4-9].
type ReceiveMaximumError struct{ Max uint16 }

func (e *ReceiveMaximumError) Error() string {
	return fmt.Sprintf("fennec: protocol violation by the broker: more than Receive Maximum (%d) unacknowledged QoS 1/2 messages [MQTT-3.3.4-9]", e.Max)
}

// Is makes errors.Is(err, ErrProtocolViolation) true.
func (e *ReceiveMaximumError) Is(target error) bool { return target == ErrProtocolViolation }

// vectorMin is the payload size from which the writer sends a PUBLISH payload from the caller's
// slice instead of copying it into the batch buffer.
const vectorMin = 16 << 10
