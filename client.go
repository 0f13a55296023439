// The Client: Connect, its state and accessors, and the end of its life (Disconnect, Close).

package fennec

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

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
	req       atomic.Pointer[requests] // Request's response topic and waiting requests; made by the first request
	outAlias  *outAliases              // the Topic Aliases we set (TopicAliases), made on first use under mu
	// servers are Server and Config.Servers; cur the one the next attempt goes to (under mu).
	servers []*ServerURL
	cur     int
	reauth  chan error // a Reauthenticate waiting for the broker's AUTH 0x00, under mu
	// redirect is the Server Reference to connect to next (FollowServerReference), under mu.
	redirect string

	cfg   Config
	url   *ServerURL
	tlsc  *tls.Config // the prepared TLS config of Server's connections (TLS schemes only)
	log   *slog.Logger
	store session.Store

	mu        sync.Mutex
	conn      *mqttconn.Conn
	caps      brokerCaps // what the CONNACK of conn allowed (set with conn; the CONNACK itself stays encoded on it)
	closed    bool
	stopping  bool  // Disconnect or Close was called
	finished  bool  // stopped, and no handler or callback runs any more (Done)
	closedErr error // why the client stopped (ErrClosed, or the lost connection without reconnect)
	closeCh   chan struct{}
	doneCh    chan struct{} // Done's channel, made by the first call (most clients never make it)
	stateCh   chan struct{} // made by a waiter, closed (and cleared) when the connection state changes
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
	// counters of Stats kept here (the others are counted where they happen)
	connections, droppedOversize uint64

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
	if err := cfg.applyDefaults(u); err != nil {
		return nil, err
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
		closeCh: make(chan struct{}),
		out:     session.NewOutbound[Token](cfg.MaxInflight, cfg.MaxOfflineQueue), in: session.NewInbound(),
		seed: maphash.MakeSeed()}
	c.out.OnDone = c.onDone
	if u.TLS() {
		// One prepared TLS config for all of this client's connections to Server.
		c.tlsc = c.tlsFor(u.Scheme, u.Addr())
	}
	c.disp.c = c
	if c.store != nil {
		if err := c.restore(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *Client) signalState() {
	if c.stateCh != nil {
		close(c.stateCh)
		c.stateCh = nil
	}
}

// awaitLocked registers ch for the acknowledgement (SUBACK, UNSUBACK) of packet identifier id,
// c.mu held. The map is made on first use: an idle client that never subscribes holds none.
func (c *Client) awaitLocked(id uint16, ch chan packet.Packet) {
	if c.requests == nil {
		c.requests = map[uint16]chan packet.Packet{}
	}
	c.requests[id] = ch
}

// signalRoom wakes the publishers waiting for room in the queue once the queue has room for
// a batch of messages (an eighth of its bound): a publisher faster than the connection then
// wakes once per batch, not once per acknowledgement, and finds room for all of the batch.
// Called, c.mu held, where a message leaves the queue; the places that change whether a
// publisher may wait at all (a connection up or down, the client closed) use signalSpace.
func (c *Client) signalRoom() {
	if c.spaceCh != nil && c.out.Free() >= max(1, c.cfg.MaxOfflineQueue/8) {
		c.signalSpace()
	}
}

func (c *Client) signalSpace() {
	if c.spaceCh != nil {
		close(c.spaceCh)
		c.spaceCh = nil
	}
}

// ConnectionState returns the TLS state (nil for plain connections) and CONNACK of the
// current connection; both nil while offline. The CONNACK is decoded anew on each call (the
// connection keeps it encoded): the caller may keep or change it.
func (c *Client) ConnectionState() (*tls.ConnectionState, *packet.Connack) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil, nil
	}
	return c.conn.TLSState(), c.conn.Connack()
}

// brokerCaps is what the client consults of a CONNACK after the connection is up, in 8 bytes
// instead of the 320 of a decoded CONNACK kept per client.
type brokerCaps struct {
	maxQoS        uint8  // Maximum QoS; 2 when the broker did not say
	noRetain      bool   // Retain Available 0
	noWildcard    bool   // Wildcard Subscription Available 0
	noShared      bool   // Shared Subscription Available 0
	noSubID       bool   // Subscription Identifiers Available 0
	topicAliasMax uint16 // Topic Alias Maximum
}

func capsOf(ack *packet.Connack) brokerCaps {
	p := &ack.Props
	c := brokerCaps{maxQoS: 2, topicAliasMax: p.TopicAliasMaximum}
	if p.Has(packet.PropMaximumQoS) {
		c.maxQoS = p.MaximumQoS
	}
	c.noRetain = p.Has(packet.PropRetainAvailable) && p.RetainAvailable == 0
	c.noWildcard = p.Has(packet.PropWildcardSubscriptionAvailable) && p.WildcardSubscriptionAvailable == 0
	c.noShared = p.Has(packet.PropSharedSubscriptionAvailable) && p.SharedSubscriptionAvailable == 0
	c.noSubID = p.Has(packet.PropSubscriptionIdentifiersAvailable) && p.SubscriptionIdentifiersAvailable == 0
	return c
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
		if c.stateCh == nil {
			c.stateCh = make(chan struct{})
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
			// Finish the acknowledgements of messages already taken: their handlers return and
			// are acknowledged, QoS 2 ones wait for PUBREL and get PUBCOMP; then DISCONNECT,
			// then nothing [MQTT-3.14.4-1]. New messages are no longer taken meanwhile
			// (onPublish), so this ends.
			c.awaitInboundSettled(ctx, conn)
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
	c.disp.stop(c.markDone)
	if n > 0 {
		return fmt.Errorf("%w: %d QoS 1/2 messages", ErrUnacknowledged, n)
	}
	if err != nil && !errors.Is(err, mqttconn.ErrClosed) {
		return wrapErr("disconnect", err)
	}
	return nil
}

// awaitInboundSettled waits, within ctx and at most inboundDrain, until no inbound QoS 1/2
// message on conn is unacknowledged: none waits for its handler to return (it has no PUBACK or
// PUBREC yet) and none waits for its PUBREL.
func (c *Client) awaitInboundSettled(ctx context.Context, conn *mqttconn.Conn) {
	deadline := time.Now().Add(inboundDrain)
	for {
		c.mu.Lock()
		n := c.in.Unacked()
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

// inboundDrain bounds how long Disconnect waits for inbound messages to be acknowledged.
const inboundDrain = 2 * time.Second

// shutdownLocal releases a client whose first connect failed.
func (c *Client) shutdownLocal() {
	c.mu.Lock()
	c.closed, c.stopping, c.closedErr = true, true, ErrClosed
	close(c.closeCh)
	c.mu.Unlock()
	c.disp.stop(c.markDone)
}

// Done is closed when the client has stopped (Disconnect, Close, or a lost connection with
// DisableReconnect) and no handler or callback is running or will run. Disconnect and Close do
// not wait for a handler that is running, since it may be the very handler that calls them:
// wait on Done to know that the last one returned.
func (c *Client) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.doneCh == nil {
		c.doneCh = make(chan struct{})
		if c.finished {
			close(c.doneCh)
		}
	}
	return c.doneCh
}

// markDone records that the client has finished (the dispatcher's last handler returned) and
// closes Done's channel if one was asked for.
func (c *Client) markDone() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finished = true
	if c.doneCh != nil {
		close(c.doneCh)
	}
}
