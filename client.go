package fennec

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/fennec-mqtt/fennec/internal/connfast"
	"github.com/fennec-mqtt/fennec/mqttconn"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/session"
)

// Message is an application message: what Publish sends and what handlers receive.
type Message struct {
	Topic   string
	Payload []byte
	QoS     packet.QoS
	Retain  bool
	Dup     bool              // set on received messages the broker may have sent before
	Props   packet.Properties // MQTT 5 publish properties (ignored for 3.1.1)
	// PacketID is the packet identifier the broker gave a received QoS 1 or 2 message (0 for
	// QoS 0), for logs and traces; the client acknowledges it by itself. It is ignored when
	// publishing: the client assigns identifiers.
	PacketID uint16
}

// MessageHandler handles a received message. Handlers run one at a time, in arrival order,
// outside the client's locks: a handler may publish, subscribe or unsubscribe, and wait for
// the outcome. A handler may start on the connection's reading goroutine; reading moves to
// another goroutine as soon as it waits for the broker or runs for a millisecond, so a slow
// or blocked handler slows the broker down (back-pressure) and never stops the client from
// reading. m is the handler's to keep.
type MessageHandler func(m *Message)

// Client is an MQTT client that reconnects and keeps its session. Create it with Connect; its
// methods are safe for concurrent use.
type Client struct {
	// aliasConn and aliases are the Topic Aliases the broker set on aliasConn, the connection
	// being read; only the reading goroutine uses them.
	aliasConn *mqttconn.Conn
	aliases   map[uint16]string
	req       requests // Request's response topic and waiting requests
	outAlias  outAliases
	// servers are Server and Config.Servers; cur the one the next attempt goes to (under mu).
	servers []*ServerURL
	cur     int
	reauth  chan error // a Reauthenticate waiting for the broker's AUTH 0x00, under mu
	// redirect is the Server Reference to connect to next (FollowServerReference), under mu.
	redirect string

	cfg   Config
	url   *ServerURL
	opts  mqttconn.Options
	log   *slog.Logger
	store session.Store

	mu        sync.Mutex
	conn      *mqttconn.Conn
	connack   *packet.Connack
	closed    bool
	closedErr error // why the client stopped (ErrClosed, or the lost connection without reconnect)
	stopping  bool  // Disconnect or Close was called
	closeCh   chan struct{}
	doneCh    chan struct{} // closed by the dispatcher once stopped and idle (Done)
	stateCh   chan struct{} // closed and replaced when the connection state changes
	spaceCh   chan struct{} // closed and replaced when queue space frees
	// out and in are the session: the state machines of outbound messages (queue, packet IDs,
	// in-flight window, resend) and inbound ones (acknowledgements, exactly-once). The client
	// drives them under mu and performs the sends and store writes they call for.
	out           *session.Outbound[Token]
	in            *session.Inbound
	requests      map[uint16]chan packet.Packet
	subs          map[string]*subscription
	subOrder      []string
	nextSubID     uint32       // the last Subscription Identifier given (MQTT 5)
	seed          maphash.Seed // for session.Inbound's fingerprints
	warnedRecvMax bool
	stats         Stats

	disp dispatcher

	// retry is the reconnect state, owned by the connection goroutine (run); a hand-off of
	// reading passes it on with the goroutine.
	retry struct {
		tried     bool      // an attempt was made (the first one waits for nothing)
		failures  int       // losses and failed attempts since the last stable connection
		permanent bool      // the last attempt was refused for good (Permanent)
		upSince   time.Time // when the current connection came up
	}

	wg sync.WaitGroup // the connection goroutine
}

type subscription struct {
	sub     packet.Subscription
	handler MessageHandler
	// acked: the broker granted it (SUBACK). Only granted subscriptions are restored when the
	// broker lost the session; one still waiting is sent again by its Subscribe call, once.
	acked bool
	// subID is the MQTT 5 Subscription Identifier of the Subscribe call that made it (0: none):
	// a message the broker sends for it carries the identifier, and goes to this handler only.
	subID uint32
}

// outMsg is an outbound message: its queue entry, packet and token in one allocation.
type outMsg = session.Entry[Token]

// Connect creates a client and connects it. It returns after the broker accepted the
// connection (CONNACK), or with the first attempt's error — unless cfg.ConnectRetry is set:
// then it returns at once and connects in the background.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	if c.cfg.ConnectRetry {
		c.wg.Add(1)
		go c.run(nil)
		return c, nil
	}
	conn, ack, err := c.dial(ctx)
	for i := 1; err != nil && i < len(c.servers) && !Permanent(err) && ctx.Err() == nil; i++ {
		conn, ack, err = c.dial(ctx) // Servers: each gets one try before Connect gives up
	}
	if c.redirected() && referred(err) {
		conn, ack, err = c.dial(ctx) // the CONNACK named the server to use
	}
	if err != nil && cfg.VersionFallback && c.cfg.Version == packet.V5 && versionRefused(err) {
		c.shutdownLocal()
		if c.log != nil {
			c.log.Warn("broker refused MQTT 5: connecting with MQTT 3.1.1", "server", c.url.String(), "error", err)
		}
		cfg.Version = packet.V311
		if c, err = newClient(cfg); err != nil {
			return nil, err
		}
		conn, ack, err = c.dial(ctx)
	}
	if err != nil {
		c.shutdownLocal()
		return nil, err
	}
	c.up(conn, ack)
	c.wg.Add(1)
	go c.run(conn)
	return c, nil
}

func newClient(cfg Config) (*Client, error) {
	u, err := ParseURL(cfg.Server)
	if err != nil {
		return nil, err
	}
	if cfg.Version == 0 {
		cfg.Version = packet.V5
	}
	if cfg.Version != packet.V5 && cfg.Version != packet.V311 {
		return nil, fmt.Errorf("fennec: unsupported protocol version %d (use packet.V5 or packet.V311)", cfg.Version)
	}
	if cfg.ClientID == "" {
		// Nobody can resume a session under an ID made up here: ask for a clean one that ends
		// with the connection, so that the broker keeps nothing for it.
		if cfg.Store != nil {
			return nil, errors.New("fennec: a session Store needs a ClientID: a generated ID cannot resume the session")
		}
		cfg.ClientID = randomClientID()
		cfg.CleanStart, cfg.SessionExpiry = true, 0
	}
	if cfg.Username == "" && u.Username != "" {
		cfg.Username = u.Username
	}
	if cfg.Password == nil && u.HasPassword {
		cfg.Password = []byte(u.Password)
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 60 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 30 * time.Second
	}
	if cfg.Backoff == nil {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.BackoffResetAfter <= 0 {
		cfg.BackoffResetAfter = 30 * time.Second
	}
	if cfg.ReceiveMaximum == 0 {
		cfg.ReceiveMaximum = 256
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 1000
		if cfg.Version == packet.V311 {
			// 3.1.1 has no Receive Maximum to learn the broker's limit from; stock brokers
			// refuse or drop beyond theirs (mosquitto 2.0.11 lost QoS 2 messages with 1000).
			cfg.MaxInflight = DefaultMaxInflight311
		}
	}
	if cfg.MaxInflight > 65535 {
		cfg.MaxInflight = 65535
	}
	if cfg.MaxPacketSize == 0 {
		cfg.MaxPacketSize = packet.DefaultMaxPacketSize
	}
	if cfg.MaxOfflineQueue <= 0 {
		cfg.MaxOfflineQueue = 1000
	}
	if cfg.MaxOfflineQueue > 65535-cfg.MaxInflight {
		cfg.MaxOfflineQueue = 65535 - cfg.MaxInflight // packet IDs are taken at Publish
	}
	ka := cfg.KeepAlive
	if ka < 0 {
		ka = 0
	}
	keepAlive := int64((ka + time.Second - 1) / time.Second) // whole seconds, rounded up
	if keepAlive > 65535 {
		keepAlive = 65535
	}
	conn := packet.Connect{Version: cfg.Version, CleanStart: cfg.CleanStart, KeepAlive: uint16(keepAlive),
		ClientID: cfg.ClientID, Username: cfg.Username, HasUsername: cfg.Username != "",
		Password: cfg.Password, HasPassword: cfg.Password != nil}
	if cfg.Will != nil {
		conn.Will = &packet.Will{Topic: cfg.Will.Topic, Payload: cfg.Will.Payload, QoS: cfg.Will.QoS,
			Retain: cfg.Will.Retain}
		if cfg.Version == packet.V5 {
			conn.Will.Props = cfg.Will.Props
		}
	}
	if cfg.Version == packet.V5 {
		conn.Props = cfg.ConnectProperties
		// Topic aliases from the broker are not supported: announce none (zero) so the broker
		// never sends one [MQTT-3.3.2-9].
		conn.Props.Clear(packet.PropTopicAliasMaximum)
		if cfg.TopicAliasMaximum > 0 {
			conn.Props.SetTopicAliasMaximum(cfg.TopicAliasMaximum)
		}
		if cfg.SessionExpiry > 0 {
			conn.Props.SetSessionExpiryInterval(uint32(min(cfg.SessionExpiry/time.Second, 0xFFFFFFFF)))
		}
		if cfg.ReceiveMaximum != 65535 {
			conn.Props.SetReceiveMaximum(cfg.ReceiveMaximum)
		}
		if cfg.MaxPacketSize > 0 {
			conn.Props.SetMaximumPacketSize(cfg.MaxPacketSize)
		}
	}
	path := cfg.WebSocketPath
	if path == "" {
		path = u.Path
	}
	servers := []*ServerURL{u}
	for _, s := range cfg.Servers {
		su, err := ParseURL(s)
		if err != nil {
			return nil, fmt.Errorf("fennec: Servers: %w", err)
		}
		servers = append(servers, su)
	}
	c := &Client{cfg: cfg, url: u, log: cfg.Logger, store: cfg.Store, servers: servers,
		closeCh: make(chan struct{}), doneCh: make(chan struct{}), stateCh: make(chan struct{}),
		out: session.NewOutbound[Token](cfg.MaxInflight, cfg.MaxOfflineQueue), in: session.NewInbound(),
		requests: map[uint16]chan packet.Packet{}, subs: map[string]*subscription{}, seed: maphash.MakeSeed(),
		req: requests{waiting: map[string]chan *Message{}}}
	c.out.OnDone = c.onDone
	c.opts = mqttconn.Options{Scheme: u.Scheme, Addr: u.Addr(), Path: path, TLSConfig: cfg.TLSConfig,
		Dial: cfg.Dial, Connect: conn, MaxPacketSize: cfg.MaxPacketSize, Logger: cfg.Logger, Auth: cfg.Authenticator}
	c.opts.OnPacket = c.onPacket
	// onPacket keeps nothing of a PUBLISH or PUBACK but its fields; a user's Trace might.
	connfast.SetReusePackets(&c.opts, cfg.Trace == nil)
	if u.TLS() {
		// One prepared TLS config for all of this client's connections to Server.
		c.opts.TLSConfig = c.tlsFor(u.Scheme, u.Addr())
	}
	if cfg.Trace != nil {
		c.opts.Trace = cfg.Trace
	}
	c.disp.c = c
	if c.store != nil {
		if err := c.restore(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// restore loads the store's session into the client before the first connection.
func (c *Client) restore() error {
	out, in, err := c.store.Load()
	if err != nil {
		return wrapErr("restoring session", err)
	}
	for _, r := range out {
		pub, err := session.UnmarshalPublish(r.Data)
		if err != nil {
			return wrapErr("restoring session", err)
		}
		c.out.Restore(&outMsg{Pub: pub}, r)
	}
	c.in.Restore(in)
	if c.log != nil && (len(out) > 0 || len(in) > 0) {
		c.log.Info("mqtt session restored", "outbound", len(out), "inbound_qos2", len(in))
	}
	return nil
}

func (c *Client) dial(ctx context.Context) (*mqttconn.Conn, *packet.Connack, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	go func() {
		select {
		case <-c.closeCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	// The broker this attempt goes to: a Server Reference to follow, else the current one of
	// Server and Servers; c.opts is Server's.
	c.mu.Lock()
	redirect, srv := c.redirect, c.servers[c.cur]
	c.mu.Unlock()
	opts := &c.opts
	if redirect != "" || srv != c.url {
		o := c.opts
		if redirect != "" {
			o.Addr = redirect
		} else {
			o.Scheme, o.Addr, o.Path = srv.Scheme, srv.Addr(), cmp.Or(c.cfg.WebSocketPath, srv.Path)
		}
		if o.Scheme == "mqtts" || o.Scheme == "wss" {
			o.TLSConfig = c.tlsFor(o.Scheme, o.Addr)
		}
		opts = &o
		if redirect != "" && c.log != nil {
			c.log.Info("mqtt connecting to the server the broker referred to", "server", redirect)
		}
	}
	if f := c.cfg.WebSocketPathFunc; f != nil && (c.url.Scheme == "ws" || c.url.Scheme == "wss") {
		path, err := f(ctx)
		if err != nil {
			return nil, nil, wrapErr("websocket path", err)
		}
		o := *opts
		o.Path = path
		opts = &o
	}
	conn, ack, err := mqttconn.Dial(ctx, opts)
	if err != nil {
		var re *ReasonError
		if errors.As(err, &re) && re.Packet == packet.CONNACK {
			c.noteServerReference(re)
		}
		if len(c.servers) > 1 && redirect == "" {
			c.mu.Lock()
			c.cur = (c.cur + 1) % len(c.servers) // fail over: the next attempt goes to the next
			next := c.servers[c.cur]
			c.mu.Unlock()
			if c.log != nil {
				c.log.Info("mqtt connect failed; the next attempt goes to the next server", "server", srv.String(), "next", next.String(), "error", err)
			}
		}
		return nil, ack, err
	}
	if c.log != nil {
		c.log.Info("mqtt connected", "server", srv.String(), "version", c.cfg.Version.String(),
			"client_id", c.cfg.ClientID, "session_present", ack.SessionPresent)
	}
	return conn, ack, nil
}

// run owns the connection: it reads from it and, when it ends, reconnects with backoff. When
// a handler running on this goroutine hands reading off (see dispatcher.inline), run returns
// and the goroutine that took over, started by handOffReader, owns the c.wg count.
func (c *Client) run(conn *mqttconn.Conn) {
	if c.runLoop(conn) {
		c.wg.Done()
	}
}

// runLoop is run's body; it returns false when reading was handed off to another goroutine.
//
// Every lost connection and every failed attempt is followed by a wait, Backoff(n), where n
// counts the losses and failures since the last connection that stayed up for
// BackoffResetAfter: a broker that accepts and drops at once meets a growing backoff, never a
// storm. Only the very first attempt with ConnectRetry goes out at once. A refusal that retrying
// cannot fix (Permanent) is reported and waits Backoff(0), the maximum.
func (c *Client) runLoop(conn *mqttconn.Conn) bool {
	for {
		if conn == nil {
			if c.retry.tried {
				d := c.cfg.Backoff(c.retry.failures)
				if c.retry.permanent {
					d = c.cfg.Backoff(0)
				}
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-c.closeCh:
					t.Stop()
					return true
				}
			}
			c.retry.tried = true
			var ack *packet.Connack
			var err error
			conn, ack, err = c.dial(context.Background())
			if err != nil {
				if c.isClosed() {
					return true
				}
				c.retry.failures++
				c.retry.permanent = Permanent(err)
				if c.log != nil {
					c.log.Warn("mqtt connect failed", "server", c.url.String(), "attempt", c.retry.failures,
						"permanent", c.retry.permanent, "err", err)
				}
				if f := c.cfg.OnConnectError; f != nil {
					c.disp.enqueueFunc(func() { f(c, err) })
				}
				continue
			}
			c.retry.permanent = false
			if !c.up(conn, ack) {
				conn.Close(ErrClosed)
				return true
			}
		}
		err := conn.Run()
		if errors.Is(err, mqttconn.ErrHandedOff) {
			return false
		}
		if !c.down(conn, err) {
			return true
		}
		if c.cfg.DisableReconnect {
			lost := err
			if !errors.Is(err, ErrConnectionLost) {
				lost = wrapErr("connection lost", err)
				lost = &joinedErr{lost, ErrConnectionLost}
			}
			c.mu.Lock()
			if c.closedErr == nil {
				c.closedErr = lost
			}
			c.mu.Unlock()
			c.failAll(lost)
			c.disp.stop(c.doneCh)
			return true
		}
		// The backoff starts again only after a connection that stayed up long enough.
		if time.Since(c.retry.upSince) >= c.cfg.BackoffResetAfter {
			c.retry.failures = 0
		}
		c.retry.failures++
		conn = nil
	}
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *Client) signalState() {
	close(c.stateCh)
	c.stateCh = make(chan struct{})
}

func (c *Client) signalSpace() {
	if c.spaceCh != nil {
		close(c.spaceCh)
		c.spaceCh = nil
	}
}

// up installs a new connection: it restores the session on the wire (resubscribe when the
// broker lost it, resend unacknowledged messages in their original order) and starts sending.
func (c *Client) up(conn *mqttconn.Conn, ack *packet.Connack) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.conn, c.connack = conn, ack
	c.stats.Connections++
	c.retry.tried, c.retry.upSince = true, time.Now()
	srvWindow := 65535
	if c.cfg.Version == packet.V5 && ack.Props.Has(packet.PropReceiveMaximum) && ack.Props.ReceiveMaximum > 0 {
		srvWindow = int(ack.Props.ReceiveMaximum)
	}
	sessionLost := !ack.SessionPresent
	var inClear []uint16
	if sessionLost {
		inClear = c.in.SessionLost()
	}
	// With the session present, messages still waiting for their handler keep their state:
	// the broker's resends are ignored and the ack follows when the handler returns.
	// Resubscribe first, so that messages we publish next find our subscriptions.
	resub := c.cfg.Resubscribe
	if resub == ResubscribeAuto {
		resub = ResubscribeWhenLost
		if c.cfg.Version == packet.V5 {
			resub = ResubscribeAlways
		}
	}
	if (sessionLost || resub == ResubscribeAlways) && len(c.subOrder) > 0 {
		// One SUBSCRIBE per Subscription Identifier (a SUBSCRIBE carries one), at most 64
		// filters each, in the order the filters were first subscribed. With the session
		// present, retained messages are asked for only if the subscription is new (Retain
		// Handling 1, MQTT 5): the broker may have lost it (see ResubscribePolicy).
		groups := map[uint32][]packet.Subscription{}
		var order []uint32
		for _, f := range c.subOrder {
			if sb := c.subs[f]; sb.acked {
				if _, ok := groups[sb.subID]; !ok {
					order = append(order, sb.subID)
				}
				s := sb.sub
				if !sessionLost && c.cfg.Version == packet.V5 && s.RetainHandling == 0 {
					s.RetainHandling = 1
				}
				groups[sb.subID] = append(groups[sb.subID], s)
			}
		}
		for _, sid := range order {
			subs := groups[sid]
			for len(subs) > 0 {
				n := min(len(subs), 64)
				if id, ok := c.out.IDs().Take(); ok {
					ch := make(chan packet.Packet, 1)
					c.requests[id] = ch
					conn.SendNow(subscribePacket(id, sid, subs[:n]), nil)
					go c.awaitResubscribe(conn, id, ch, subs[:n])
				}
				subs = subs[n:]
			}
		}
	}
	// Everything in the queue is sent again on this connection, in order.
	c.out.Up(ack.SessionPresent, srvWindow)
	c.pumpLocked()
	c.signalState()
	c.signalSpace()
	c.mu.Unlock()
	if c.store != nil {
		for _, id := range inClear {
			c.store.DeleteInbound(id)
		}
	}
	if f := c.cfg.OnConnectionUp; f != nil {
		c.disp.enqueueFunc(func() { f(c, ack) })
	}
	return true
}

func (c *Client) awaitResubscribe(conn *mqttconn.Conn, id uint16, ch chan packet.Packet, subs []packet.Subscription) {
	select {
	case p := <-ch:
		if sa, ok := p.(*packet.Suback); ok && c.log != nil {
			for i, rc := range sa.ReasonCodes {
				if rc >= 0x80 && i < len(subs) {
					c.log.Warn("mqtt resubscribe refused", "filter", subs[i].Filter, "code", rc.String())
				}
			}
		}
	case <-conn.Done():
		c.mu.Lock()
		if c.requests[id] == ch {
			delete(c.requests, id)
			c.out.IDs().Free(id)
		}
		c.mu.Unlock()
	}
}

// down records the end of conn; it reports whether the client goes on (reconnects).
func (c *Client) down(conn *mqttconn.Conn, err error) bool {
	c.mu.Lock()
	if c.conn == conn {
		c.conn = nil
		c.out.Down()
		c.signalState()
		c.signalSpace()
	}
	// Fail outstanding SUBSCRIBE/UNSUBSCRIBE waits: their callers retry on the next connection.
	for id, ch := range c.requests {
		delete(c.requests, id)
		c.out.IDs().Free(id)
		close(ch)
	}
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return false
	}
	if c.log != nil {
		c.log.Warn("mqtt connection lost", "server", c.url.String(), "err", err)
	}
	if f := c.cfg.OnConnectionLost; f != nil {
		c.disp.enqueueFunc(func() { f(c, err) })
	}
	return true
}

// pumpLocked hands waiting messages to the connection, in order, as far as the in-flight
// window (ours and the broker's Receive Maximum [MQTT-4.9.0-2]) allows.
func (c *Client) pumpLocked() { c.pump(false) }

// pump is pumpLocked. With queueOnly it queues without starting the connection's writer and
// returns the connection, which the caller flushes once c.mu is released (Conn.Flush).
func (c *Client) pump(queueOnly bool) *mqttconn.Conn {
	conn := c.conn
	if conn == nil {
		return nil
	}
	send := conn.SendNow
	if queueOnly {
		send = func(p packet.Packet, done func(error)) error { return connfast.Queue(conn, p, done) }
	}
	gen := c.out.Gen()
	for {
		m, act := c.out.Next()
		switch act {
		case session.None:
			return conn
		case session.SendPubrel:
			conn.SendAck(packet.PUBREL, m.Pub.PacketID)
		case session.SendPublish:
			if !m.Ext.queued.IsZero() && !m.Pub.Dup {
				// A message that waited in the queue (offline, or behind the window) loses the
				// time it waited from its Message Expiry Interval, and is not sent once that is
				// used up: the broker would not deliver it anyway.
				left := int64(m.Pub.Props.MessageExpiryInterval) - int64(time.Since(m.Ext.queued)/time.Second)
				m.Ext.queued = time.Time{}
				if left <= 0 {
					if m.Pub.QoS == 0 {
						c.out.Written0(m, gen, ErrMessageExpired, false)
					} else {
						c.out.Failed(m, gen, ErrMessageExpired)
					}
					continue
				}
				m.Pub.Props.MessageExpiryInterval = uint32(left)
			}
			pub := m.Pub
			if c.cfg.TopicAliases > 0 && c.connack != nil && c.cfg.Version == packet.V5 {
				pub = c.outAlias.apply(gen, c.cfg.TopicAliases, c.connack.Props.TopicAliasMaximum, pub)
			}
			if m.Pub.QoS == 0 {
				send(pub, func(err error) { c.written0(m, gen, err) })
			} else {
				send(pub, func(err error) { c.writtenQoS(m, gen, err) })
			}
		}
	}
}

func isConnErr(err error) bool {
	return errors.Is(err, mqttconn.ErrConnectionLost) || errors.Is(err, mqttconn.ErrClosed) ||
		errors.Is(err, mqttconn.ErrKeepAliveTimeout) || errors.Is(err, mqttconn.ErrWriteTimeout) ||
		errors.Is(err, mqttconn.ErrProtocolViolation) || isReasonDisconnect(err)
}

func isReasonDisconnect(err error) bool {
	var re *ReasonError
	return errors.As(err, &re) && re.Packet == packet.DISCONNECT
}

// written0 completes a QoS 0 message once written; a connection failure leaves it queued for
// the next connection (QoS 0 is never reported sent when it was not).
func (c *Client) written0(m *outMsg, gen uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out.Written0(m, gen, err, err != nil && isConnErr(err)) {
		c.pumpLocked()
	}
}

// writtenQoS fails a QoS 1/2 message that could not be encoded or is too large for the broker.
func (c *Client) writtenQoS(m *outMsg, gen uint64, err error) {
	if err == nil || isConnErr(err) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out.Failed(m, gen, err)
	c.pumpLocked()
}

// onDone is the session's completion of m, under c.mu: its record leaves the store and its
// token completes.
func (c *Client) onDone(m *outMsg, err error) {
	if m.Pub.QoS > 0 && c.store != nil {
		c.store.Delete(m.Seq())
	}
	c.signalSpace()
	m.Ext.complete(err)
}

// failAll completes every queued message with err (the client stops). Durable records stay in
// the store: the next process with this session sends them.
func (c *Client) failAll(err error) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.out.FailAll(func(m *outMsg) { m.Ext.complete(err) })
	c.closed = true
	c.signalSpace()
	c.signalState()
	return n
}

// ConnectionState returns the TLS state (nil for plain connections) and CONNACK of the
// current connection; both nil while offline.
func (c *Client) ConnectionState() (*tls.ConnectionState, *packet.Connack) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil, nil
	}
	return c.conn.TLSState(), c.connack
}

// Conn returns the current connection (nil while offline): the escape hatch to the layer
// below.
func (c *Client) Conn() *mqttconn.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

// IsConnected reports whether a connection is up.
func (c *Client) IsConnected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// ClientID returns the client identifier in use.
func (c *Client) ClientID() string { return c.cfg.ClientID }

// Server is the broker the client is connected to, or will try next: Config.Server or one of
// Config.Servers.
func (c *Client) Server() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[c.cur].String()
}

// Version is the MQTT version the client speaks: Config.Version, or MQTT 3.1.1 after a
// VersionFallback.
func (c *Client) Version() packet.Version { return c.cfg.Version }

// tlsFor is the TLS configuration for a connection to addr over scheme (mqtts or wss): the
// client's, with the name verified and the ALPN of WebSockets filled in.
func (c *Client) tlsFor(scheme, addr string) *tls.Config {
	var alpn []string
	if scheme == "wss" {
		alpn = []string{"http/1.1"}
	}
	return preparedTLS(c.cfg.TLSConfig, addr, alpn)
}

// noteServerReference remembers the server a 0x9C or 0x9D refers to, for the next connection.
func (c *Client) noteServerReference(re *ReasonError) {
	if !c.cfg.FollowServerReference || re.ServerReference == "" || re.Code != 0x9C && re.Code != 0x9D {
		return
	}
	ref, _, _ := strings.Cut(strings.TrimSpace(re.ServerReference), " ")
	if _, _, err := net.SplitHostPort(ref); err != nil {
		_, port, _ := net.SplitHostPort(c.url.Addr())
		ref = net.JoinHostPort(strings.Trim(ref, "[]"), port)
	}
	c.mu.Lock()
	c.redirect = ref
	c.mu.Unlock()
	if c.log != nil {
		c.log.Info("mqtt broker referred to another server", "code", re.Code.String(), "server_reference", re.ServerReference, "next", ref)
	}
}

func (c *Client) redirected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.redirect != ""
}

// referred reports whether err is a CONNACK that sends the client to another server.
func referred(err error) bool {
	var re *ReasonError
	return errors.As(err, &re) && re.Packet == packet.CONNACK && (re.Code == 0x9C || re.Code == 0x9D) && re.ServerReference != ""
}

// versionRefused reports whether err is a broker's refusal of MQTT 5 in CONNACK.
func versionRefused(err error) bool {
	var re *ReasonError
	if !errors.As(err, &re) || re.Packet != packet.CONNACK {
		return false
	}
	return re.Version == packet.V311 && re.Code == 1 || re.Version == packet.V5 && re.Code == 0x84
}

// AwaitConnection waits until the client is connected, within ctx.
func (c *Client) AwaitConnection(ctx context.Context) error {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		if c.conn != nil {
			c.mu.Unlock()
			return nil
		}
		ch := c.stateCh
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Pending returns the number of messages accepted by Publish and not yet completed.
func (c *Client) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Pending()
}

// Disconnect sends DISCONNECT, stops reconnecting and waits (within ctx) until the connection
// has ended. Messages not yet acknowledged fail with ErrClosed and are reported by an error
// wrapping ErrUnacknowledged; with a durable Store they stay in it. No handler starts after it
// returns; one already running is not waited for (a handler or a connection callback may call
// Disconnect): Done is closed once it has returned.
func (c *Client) Disconnect(ctx context.Context) error {
	return c.shutdown(ctx, true)
}

// Close closes the connection without DISCONNECT (the broker publishes the will message) and
// stops the client, like Disconnect.
func (c *Client) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.shutdown(ctx, false)
}

func (c *Client) shutdown(ctx context.Context, graceful bool) error {
	c.disp.handOffReader() // called from a handler on the reading goroutine: let it go on
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		return ErrClosed
	}
	c.stopping, c.closed = true, true
	if c.closedErr == nil {
		c.closedErr = ErrClosed
	}
	conn := c.conn
	close(c.closeCh)
	c.mu.Unlock()
	var err error
	if conn != nil {
		if graceful {
			// Finish the QoS 2 handshakes of messages already delivered (PUBREC sent): wait for
			// their PUBREL and send PUBCOMP, then DISCONNECT, then nothing [MQTT-3.14.4-1].
			// New messages are no longer taken meanwhile (onPublish), so this ends.
			c.awaitInboundReleased(ctx, conn)
			err = conn.Disconnect(ctx, &packet.Disconnect{})
		} else {
			conn.Close(ErrClosed)
		}
	}
	if conn != nil {
		conn.Close(ErrClosed)
	}
	c.wg.Wait() // the connection goroutine ends promptly once its connection is closed
	n := c.failAll(ErrClosed)
	// No handler starts from now on (queued ones are skipped). One that is running finishes on
	// its own: Disconnect does not wait for it, since it may be the caller. Done is closed when
	// it has returned.
	c.disp.stop(c.doneCh)
	if n > 0 {
		return fmt.Errorf("%w: %d QoS 1/2 messages", ErrUnacknowledged, n)
	}
	if err != nil && !errors.Is(err, mqttconn.ErrClosed) {
		return wrapErr("disconnect", err)
	}
	return nil
}

// awaitInboundReleased waits, within ctx and at most inboundDrain, until no inbound QoS 2
// message waits for its PUBREL on conn.
func (c *Client) awaitInboundReleased(ctx context.Context, conn *mqttconn.Conn) {
	deadline := time.Now().Add(inboundDrain)
	for {
		c.mu.Lock()
		n := c.in.Unreleased()
		c.mu.Unlock()
		if n == 0 || time.Now().After(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-conn.Done():
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// inboundDrain bounds how long Disconnect waits for the broker's PUBRELs.
const inboundDrain = 2 * time.Second

// shutdownLocal releases a client whose first connect failed.
func (c *Client) shutdownLocal() {
	c.mu.Lock()
	c.closed, c.stopping, c.closedErr = true, true, ErrClosed
	close(c.closeCh)
	c.mu.Unlock()
	c.disp.stop(c.doneCh)
}

// Done is closed when the client has stopped (Disconnect, Close, or a lost connection with
// DisableReconnect) and no handler or callback is running or will run. Disconnect and Close do
// not wait for a handler that is running, since it may be the very handler that calls them:
// wait on Done to know that the last one returned.
func (c *Client) Done() <-chan struct{} { return c.doneCh }

// Reauthenticate runs Config.Authenticator again on the live connection (AUTH 0x19, the broker's
// challenges, AUTH 0x00) and returns when the broker has accepted, or with its refusal (the
// broker then ends the connection). MQTT 5 only.
func (c *Client) Reauthenticate(ctx context.Context) error {
	a := c.cfg.Authenticator
	if a == nil || c.cfg.Version != packet.V5 {
		return errors.New("fennec: reauthenticate: no Authenticator (MQTT 5)")
	}
	data, err := a.Initial()
	if err != nil {
		return fmt.Errorf("fennec: reauthenticate %s: %w", a.Method(), err)
	}
	done := make(chan error, 1)
	c.mu.Lock()
	conn := c.conn
	if conn == nil || c.reauth != nil {
		c.mu.Unlock()
		return errors.New("fennec: reauthenticate: not connected, or a re-authentication is running")
	}
	c.reauth = done
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.reauth == done {
			c.reauth = nil
		}
		c.mu.Unlock()
	}()
	p := &packet.Auth{ReasonCode: packet.ReAuthenticate}
	p.Props.AuthenticationMethod = a.Method()
	p.Props.Set(packet.PropAuthenticationMethod)
	if data != nil {
		p.Props.AuthenticationData = data
		p.Props.Set(packet.PropAuthenticationData)
	}
	if err := conn.SendNow(p, nil); err != nil {
		return fmt.Errorf("fennec: reauthenticate: %w", err)
	}
	select {
	case err := <-done:
		return err
	case <-conn.Done():
		return fmt.Errorf("fennec: reauthenticate: %w", ErrConnectionLost)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// onAuth handles an AUTH from the broker on a live connection: part of a re-authentication.
func (c *Client) onAuth(conn *mqttconn.Conn, p *packet.Auth) {
	a := c.cfg.Authenticator
	c.mu.Lock()
	done := c.reauth
	c.mu.Unlock()
	if a == nil || done == nil || p.Props.AuthenticationMethod != a.Method() {
		conn.Fail(&ProtocolError{Packet: packet.AUTH, Msg: "broker sent AUTH outside an authentication this client started [MQTT-4.12.0-6]"})
		return
	}
	switch p.ReasonCode {
	case packet.ContinueAuthentication:
		data, err := a.Challenge(p.Props.AuthenticationData)
		if err != nil {
			done <- fmt.Errorf("fennec: reauthenticate %s: %w", a.Method(), err)
			conn.Fail(&ProtocolError{Packet: packet.AUTH, Msg: "re-authentication failed on this side: " + err.Error(), Reason: packet.NotAuthorized})
			return
		}
		r := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
		r.Props.AuthenticationMethod = a.Method()
		r.Props.Set(packet.PropAuthenticationMethod)
		r.Props.AuthenticationData = data
		r.Props.Set(packet.PropAuthenticationData)
		conn.SendNow(r, nil)
	case packet.Success:
		select {
		case done <- a.Finish(p.Props.AuthenticationData):
		default:
		}
	default:
		conn.Fail(&ProtocolError{Packet: packet.AUTH, Msg: fmt.Sprintf("broker sent AUTH %s during a re-authentication", p.ReasonCode)})
	}
}
