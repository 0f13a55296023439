package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Errors returned by Start.
var (
	ErrStarted = errors.New("broker: already started")
	ErrClosed  = errors.New("broker: closed")
)

// Listener describes one network listener.
type Listener struct {
	// Name identifies the listener in logs and in Broker.Listener; zero: the scheme ("tcp",
	// "tls", "ws", "wss"), or for a second listener of the same scheme the scheme and its position
	// in Options.Listeners ("tls-3").
	Name string
	// URL is scheme://host:port[/path] with scheme tcp, tls, ws or wss (mqtt and mqtts are accepted
	// as tcp and tls). An empty host means 127.0.0.1; port 0 or no port picks a free port. The path
	// of a WebSocket listener is ignored: every path is served, clients conventionally use /mqtt.
	URL string
	// TLS configures tls:// and wss:// listeners; it is required for them and ignored otherwise.
	TLS *TLS
}

// TLS configures the server side of a TLS listener.
type TLS struct {
	// Certificate is the server certificate chain and key. Alternatively CertFile and KeyFile name
	// PEM files.
	Certificate       *tls.Certificate
	CertFile, KeyFile string
	// ClientCAs verifies client certificates; alternatively ClientCAFile names a PEM bundle.
	ClientCAs    *x509.CertPool
	ClientCAFile string
	// RequireClientCert makes the handshake fail for a client without a certificate signed by
	// ClientCAs. The certificate's identity (see Identity) then names the client for
	// authorization, and anonymous access is impossible on this listener.
	RequireClientCert bool
	// MinVersion is the lowest TLS version accepted; zero means TLS 1.3. TLS 1.2 may be chosen;
	// anything lower is refused by New.
	MinVersion uint16
}

// Options configures a Broker. The zero value is a broker with one plain TCP listener on a free
// loopback port that lets every client connect, publish and subscribe.
type Options struct {
	// Listeners to open; zero: one tcp://127.0.0.1:0.
	Listeners []Listener
	// Logger receives structured logs; nil: silent.
	Logger *slog.Logger
	// ACL controls authentication and authorization; nil allows everything to every client that
	// passed the listener's TLS requirements.
	ACL *ACL
	// SCRAM are the users (name → password) of MQTT 5 enhanced authentication with
	// SCRAM-SHA-256 (scram.go); a connection authenticated so has the user as its identity,
	// and the ACL's rules for that user apply. Nil: the broker refuses every Authentication
	// Method (0x8C).
	SCRAM map[string]string
	// AWS turns on the AWS IoT Core emulation (see AWS); it excludes ACL.
	AWS *AWS
	// MaxPacketSize is the largest packet a client may send, announced in the MQTT 5 CONNACK
	// (Maximum Packet Size); a larger one ends the connection before its bytes are read. Zero:
	// DefaultMaxPacketSize.
	MaxPacketSize uint32
	// MaxStoredMessages bounds the QoS 1/2 messages a session holds: stored for an offline
	// client, or sent to a connected one and not yet acknowledged. At the bound a new message
	// for that session is dropped for it alone (its publisher still gets PUBACK: the message
	// reached the broker and its other subscribers), logged at warning level and counted per
	// client (Dropped). Zero: DefaultMaxStoredMessages. A session whose client has no Receive
	// Maximum (MQTT 3.1.1, or MQTT 5 without one) holds at most 65,535 in any case: each of its
	// stored messages takes a packet identifier.
	MaxStoredMessages int
	// MaxSubscribeFilters is the most topic filters one SUBSCRIBE may carry; a SUBSCRIBE with more
	// is answered with every filter refused (MQTT 5: 0x97 Quota exceeded). Zero: 1,024.
	MaxSubscribeFilters int
	// MaxConnectSize is the largest CONNECT accepted, before the client is authenticated: a
	// larger one closes the connection as soon as its length is read. Zero: DefaultMaxConnectSize.
	MaxConnectSize uint32
}

// DefaultMaxPacketSize is Options.MaxPacketSize when zero: 1 MiB, as the Fennec client's.
//
// Memory per connection follows from it: mochi allocates a packet's whole length once the
// fixed header is read, and copies the body once to decode it, so a connection holds at most
// about 2 × MaxPacketSize of packet buffers plus its read and write buffers (a few KiB); before
// CONNECT is authenticated, 2 × MaxConnectSize.
const DefaultMaxPacketSize = 1 << 20

// DefaultMaxStoredMessages is Options.MaxStoredMessages when zero: a backlog of 100,000
// messages, drained at a reconnect in under a second (BenchmarkBacklog). A stored message
// costs about 900 bytes plus its topic and payload, so a full session of small messages holds
// about 100 MB: lower it for many offline sessions.
const DefaultMaxStoredMessages = 100000

// DefaultMaxConnectSize is Options.MaxConnectSize when zero: 64 KiB, room for a client ID, a
// user name, a password or token of several KiB and a will message of tens of KiB.
const DefaultMaxConnectSize = 64 << 10

// Bound is a listener after Start.
type Bound struct {
	Name   string
	Scheme string // tcp, tls, ws or wss
	Addr   string // host:port actually bound
}

// ClientURL returns the URL a Fennec client uses for this listener: mqtt://, mqtts://, ws://…/mqtt
// or wss://…/mqtt.
func (b Bound) ClientURL() string {
	switch b.Scheme {
	case "tcp":
		return "mqtt://" + b.Addr
	case "tls":
		return "mqtts://" + b.Addr
	default:
		return b.Scheme + "://" + b.Addr + "/mqtt"
	}
}

// Broker is an embedded MQTT broker built on mochi-mqtt. Create it with New, then Start it; Close
// stops every listener and connection.
type Broker struct {
	opts    Options
	log     *slog.Logger
	srv     *mqtt.Server
	hook    *hook
	shadows *shadows      // AWS emulation: the Device Shadow service
	jobs    *jobs         // AWS emulation: the Jobs service
	streams *streams      // AWS emulation: MQTT-based file delivery
	prov    *provisioning // AWS emulation: Fleet Provisioning (when AWS.Issuer is set)
	faults  *Faults
	done    chan struct{}

	dropMu  sync.Mutex
	dropped map[string]uint64 // messages dropped at a session's bound, by client ID
	dirty   map[string]bool   // clients whose count changed since it was last published
	sysWG   sync.WaitGroup    // the $SYS publisher

	specs []listenerSpec

	mu        sync.Mutex
	started   bool
	closed    bool
	listeners []*listener
}

type listenerSpec struct {
	name, scheme, addr string
	tls                *tls.Config
	requireCert        bool
}

// New validates opts and prepares a broker; it opens no sockets.
func New(opts Options) (*Broker, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(opts.Listeners) == 0 {
		opts.Listeners = []Listener{{URL: "tcp://127.0.0.1:0"}}
	}
	b := &Broker{opts: opts, log: log, faults: newFaults(), done: make(chan struct{})}
	b.faults.b = b
	if err := b.parseListeners(); err != nil {
		return nil, err
	}
	if opts.AWS != nil && opts.ACL != nil {
		return nil, errors.New("broker: an ACL and the AWS emulation exclude each other (the AWS policy authorizes)")
	}
	if opts.AWS != nil {
		if err := opts.AWS.prepare(); err != nil {
			return nil, err
		}
	}
	opts.applyDefaults()
	b.opts = opts
	b.srv = newMochi(opts, log, b)
	b.hook = &hook{b: b}
	if err := b.srv.AddHook(b.hook, nil); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	if opts.AWS != nil {
		if err := b.startAWS(); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// parseListeners checks the listeners of b.opts and names them ("tls-2" for a second one of
// a scheme).
func (b *Broker) parseListeners() error {
	opts := b.opts
	names := map[string]bool{}
	for _, l := range opts.Listeners {
		spec, err := parseListener(l, opts.AWS != nil, opts.AWS != nil && len(opts.AWS.Authorizers) > 0)
		if err != nil {
			return err
		}
		if names[spec.name] && l.Name == "" {
			// A second listener of a scheme is named after its position: "tls-2".
			spec.name = fmt.Sprintf("%s-%d", spec.scheme, len(b.specs)+1)
		}
		if names[spec.name] {
			return fmt.Errorf("broker: two listeners named %q", spec.name)
		}
		names[spec.name] = true
		b.specs = append(b.specs, spec)
	}
	return nil
}

// applyDefaults fills in the limits left zero.
func (opts *Options) applyDefaults() {
	if opts.MaxPacketSize == 0 {
		opts.MaxPacketSize = DefaultMaxPacketSize
	}
	if opts.MaxConnectSize == 0 {
		opts.MaxConnectSize = DefaultMaxConnectSize
	}
	opts.MaxConnectSize = min(opts.MaxConnectSize, opts.MaxPacketSize)
	if opts.MaxSubscribeFilters <= 0 {
		opts.MaxSubscribeFilters = 1024
	}
	if opts.MaxStoredMessages <= 0 {
		opts.MaxStoredMessages = DefaultMaxStoredMessages
	}
}

// newMochi is the mochi server under the broker, with its capabilities from opts.
func newMochi(opts Options, log *slog.Logger, b *Broker) *mqtt.Server {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = opts.MaxPacketSize
	caps.MaximumInflight = uint16(min(opts.MaxStoredMessages, 65535))
	// Acknowledgements carry their own properties, not copies of the PUBLISH's user properties.
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	if opts.AWS != nil {
		opts.AWS.capabilities(caps)
	}
	return mqtt.New(&mqtt.Options{
		Logger:       slog.New(quieter{Handler: log.Handler(), b: b}).With("component", "mochi"),
		Capabilities: caps,
		// $SYS topics once a minute, not every second: a development broker's logs stay quiet.
		SysTopicResendInterval: 60,
		// Every packet is written when mochi writes it, never left in mochi's coalescing
		// buffer: that buffer is flushed only by a later write from its write loop, and a
		// message the broker holds back for the client's Receive Maximum (flow.go) is such a
		// write that does not happen.
		ClientNetWriteBufferSize: 1,
		// The broker publishes as itself: the AWS emulation's services answer, drop counts go
		// to $SYS.
		InlineClient: true,
	})
}

// startAWS starts the AWS IoT Core emulation's services: Device Shadow, Jobs, file streams and
// Fleet Provisioning.
func (b *Broker) startAWS() error {
	opts := b.opts
	b.shadows = &shadows{b: b, docs: map[string]*shadowDoc{}, now: time.Now}
	if err := b.shadows.start(b.srv); err != nil {
		return err
	}
	b.jobs = newJobs(b)
	if err := b.jobs.start(b.srv); err != nil {
		return err
	}
	b.streams = newStreams(b)
	if err := b.streams.start(b.srv); err != nil {
		return err
	}
	for _, st := range opts.AWS.Streams {
		if err := b.streams.create(st); err != nil {
			return err
		}
	}
	if opts.AWS.Issuer != nil {
		prov, err := newProvisioning(b, opts.AWS)
		if err != nil {
			return err
		}
		b.prov = prov
		if err := b.prov.start(b.srv); err != nil {
			return err
		}
	}
	for _, job := range opts.AWS.Jobs {
		if err := b.jobs.create(job); err != nil {
			return err
		}
	}
	return nil
}

func parseListener(l Listener, aws, awsCustomAuth bool) (listenerSpec, error) {
	raw := l.URL
	if raw == "" {
		raw = "tcp://127.0.0.1:0"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return listenerSpec{}, fmt.Errorf("broker: listener %q: want scheme://host:port", raw)
	}
	scheme := strings.ToLower(u.Scheme)
	switch scheme {
	case "mqtt":
		scheme = "tcp"
	case "mqtts", "ssl":
		scheme = "tls"
	case "tcp", "tls", "ws", "wss":
	default:
		return listenerSpec{}, fmt.Errorf("broker: listener %q: unknown scheme %q (want tcp, tls, ws or wss)", raw, u.Scheme)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		host = "127.0.0.1"
	}
	if port == "" {
		port = "0"
	}
	spec := listenerSpec{name: l.Name, scheme: scheme, addr: net.JoinHostPort(host, port)}
	if spec.name == "" {
		spec.name = scheme
	}
	if scheme == "tls" || scheme == "wss" {
		if l.TLS == nil {
			return listenerSpec{}, fmt.Errorf("broker: listener %q needs TLS settings (certificate and key)", raw)
		}
		cfg, err := l.TLS.config(aws, awsCustomAuth)
		if err != nil {
			return listenerSpec{}, fmt.Errorf("broker: listener %q: %w", raw, err)
		}
		spec.tls = cfg
		spec.requireCert = cfg.ClientAuth == tls.RequireAndVerifyClientCert || cfg.ClientAuth == tls.RequireAnyClientCert
	}
	return spec, nil
}

func (t *TLS) config(aws, awsCustomAuth bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13}
	switch t.MinVersion {
	case 0, tls.VersionTLS13:
	case tls.VersionTLS12:
		cfg.MinVersion = tls.VersionTLS12
	default:
		return nil, fmt.Errorf("TLS minimum version %s refused: only TLS 1.2 and 1.3 are offered", tls.VersionName(t.MinVersion))
	}
	switch {
	case t.Certificate != nil:
		cfg.Certificates = []tls.Certificate{*t.Certificate}
	case t.CertFile != "" && t.KeyFile != "":
		c, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("server certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{c}
	default:
		return nil, errors.New("no server certificate (set TLS.Certificate or TLS.CertFile and TLS.KeyFile)")
	}
	pool := t.ClientCAs
	if t.ClientCAFile != "" {
		data, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("client CA: %w", err)
		}
		if pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("client CA: no PEM certificate in %s", t.ClientCAFile)
		}
	}
	cfg.ClientCAs = pool
	switch {
	case awsCustomAuth:
		// Custom authorizers authenticate connections without a certificate; one that has none
		// and names no authorizer is refused at CONNECT.
		cfg.ClientAuth = tls.RequestClientCert
	case aws:
		// AWS IoT Core accepts any registered device certificate, also one whose CA is not
		// registered; the emulation checks registration at CONNECT (see AWS).
		cfg.ClientAuth = tls.RequireAnyClientCert
	case t.RequireClientCert:
		if pool == nil {
			return nil, errors.New("client certificates required but no client CA given")
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	case pool != nil:
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// Start opens every listener and starts serving. The context bounds only the start-up.
func (b *Broker) Start(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if b.started {
		return ErrStarted
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// On failure every socket opened so far is closed again: a failed Start leaves nothing open.
	fail := func(err error) error {
		for _, l := range b.listeners {
			l.ln.Close()
		}
		b.listeners = nil
		return err
	}
	var lc net.ListenConfig
	for _, spec := range b.specs {
		ln, err := lc.Listen(ctx, "tcp", spec.addr)
		if err != nil {
			return fail(fmt.Errorf("broker: listener %s: %w", spec.name, err))
		}
		b.listeners = append(b.listeners, newListener(b, spec, ln))
	}
	for _, l := range b.listeners {
		if err := b.srv.AddListener(l); err != nil {
			return fail(fmt.Errorf("broker: %w", err))
		}
	}
	if err := b.srv.Serve(); err != nil {
		return fail(fmt.Errorf("broker: %w", err))
	}
	b.started = true
	b.sysWG.Add(1)
	go b.publishDrops()
	for _, l := range b.listeners {
		b.log.Info("listening", "listener", l.spec.name, "scheme", l.spec.scheme, "addr", l.Address(),
			"client_cert_required", l.spec.requireCert, "tls_min", tlsMin(l.spec.tls))
	}
	return nil
}

func tlsMin(c *tls.Config) string {
	if c == nil {
		return ""
	}
	return tls.VersionName(c.MinVersion)
}

// Listeners returns the bound listeners in the order of Options.Listeners; nil before Start.
func (b *Broker) Listeners() []Bound {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Bound, 0, len(b.listeners))
	for _, l := range b.listeners {
		out = append(out, Bound{Name: l.spec.name, Scheme: l.spec.scheme, Addr: l.Address()})
	}
	return out
}

// Addr returns the host:port of the first listener; "" before Start.
func (b *Broker) Addr() string {
	ls := b.Listeners()
	if len(ls) == 0 {
		return ""
	}
	return ls[0].Addr
}

// Listener returns the bound listener with the given name (by default the scheme: "tcp", "tls",
// "ws", "wss").
func (b *Broker) Listener(name string) (Bound, bool) {
	for _, l := range b.Listeners() {
		if l.Name == name {
			return l, true
		}
	}
	return Bound{}, false
}

func (b *Broker) closing() <-chan struct{} { return b.done }

// Faults returns the fault-injection controls of this broker.
func (b *Broker) Faults() *Faults { return b.faults }

// Server exposes the underlying mochi-mqtt server, an escape hatch for what this package does not
// wrap. Do not add listeners to it.
func (b *Broker) Server() *mqtt.Server { return b.srv }

// Stored returns how many QoS 1/2 messages the session of clientID holds: stored while it was
// offline, or sent and not yet acknowledged; 0 when there is no such session.
func (b *Broker) Stored(clientID string) int {
	cl, ok := b.srv.Clients.Get(clientID)
	if !ok {
		return 0
	}
	n := cl.State.Inflight.Len()
	if s := b.hook.sessionOrParked(cl); s != nil {
		s.heldMu.Lock()
		n += len(s.held)
		s.heldMu.Unlock()
	}
	return n
}

// countDrop records a message dropped for clientID at its session's bound.
func (b *Broker) countDrop(clientID string) {
	b.dropMu.Lock()
	if b.dropped == nil {
		b.dropped = map[string]uint64{}
	}
	b.dropped[clientID]++
	if b.dirty == nil {
		b.dirty = map[string]bool{}
	}
	b.dirty[clientID] = true
	b.dropMu.Unlock()
}

// DroppedTopic is where the broker publishes, retained, how many messages it dropped for a
// client's session at its bound: DroppedTopic + CLIENT_ID, the count as decimal text, at most
// once a second per client (subscribe to $SYS/broker/fennec/dropped/#).
const DroppedTopic = "$SYS/broker/fennec/dropped/"

// publishDrops publishes the changed drop counts every second until the broker closes.
func (b *Broker) publishDrops() {
	defer b.sysWG.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
		}
		b.dropMu.Lock()
		counts := make(map[string]uint64, len(b.dirty))
		for id := range b.dirty {
			counts[id] = b.dropped[id]
		}
		b.dirty = nil
		b.dropMu.Unlock()
		for id, n := range counts {
			if err := b.srv.Publish(DroppedTopic+id, []byte(strconv.FormatUint(n, 10)), true, 0); err != nil {
				b.log.Debug("drop count not published", "client", id, "error", err)
			}
		}
	}
}

// Dropped returns how many QoS 1/2 messages were dropped for each client's session because it
// held Options.MaxStoredMessages already. A client without drops is absent.
func (b *Broker) Dropped() map[string]uint64 {
	b.dropMu.Lock()
	defer b.dropMu.Unlock()
	out := make(map[string]uint64, len(b.dropped))
	for k, v := range b.dropped {
		out[k] = v
	}
	return out
}

// Close stops the listeners, disconnects every client and waits for the broker's goroutines. It is
// safe to call more than once and before Start.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.done)
	started := b.started
	listeners := b.listeners
	b.mu.Unlock()
	b.faults.closeAll()
	if !started {
		for _, l := range listeners {
			l.ln.Close()
		}
		return nil
	}
	b.sysWG.Wait()
	err := b.srv.Close()
	for _, l := range listeners {
		l.wait()
	}
	b.log.Info("stopped")
	return err
}

// quieter demotes mochi's Info records to Debug: the broker logs the same events itself, with
// the fields a user needs (identity, TLS facts, reasons). It also blanks the password of the
// packets mochi logs (a second CONNECT is logged whole at Warn level), so no secret reaches a log.
// quieter is mochi's log handler: mochi's info lines become debug lines, passwords are redacted,
// and the one line mochi writes when it drops a message at a session's bound is counted per
// client (the seam is pinned by TestStoredMessagesBound: a mochi that words it otherwise fails
// that test).
type quieter struct {
	slog.Handler
	b *Broker
}

// mochiQuotaReached is the message of mochi's log line for a message dropped at a session's
// MaximumInflight (server.go, publishToClient).
const mochiQuotaReached = "client store quota reached"

func (q quieter) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == mochiQuotaReached && q.b != nil {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "client" {
				q.b.countDrop(a.Value.String())
				return false
			}
			return true
		})
	}
	if r.Level == slog.LevelInfo {
		r.Level = slog.LevelDebug
	}
	if !q.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return q.Handler.Handle(ctx, redactPasswords(r))
}

// redactPasswords returns r with the CONNECT password of every packet attribute replaced.
func redactPasswords(r slog.Record) slog.Record {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		pk, ok := a.Value.Any().(packets.Packet)
		found = ok && len(pk.Connect.Password) > 0
		return !found
	})
	if !found {
		return r
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if pk, ok := a.Value.Any().(packets.Packet); ok && len(pk.Connect.Password) > 0 {
			pk.Connect.Password = []byte("[redacted]")
			a.Value = slog.AnyValue(pk)
		}
		out.AddAttrs(a)
		return true
	})
	return out
}

// Enabled lets warnings through to Handle whatever the level, so that drops are counted.
func (q quieter) Enabled(ctx context.Context, l slog.Level) bool {
	if l >= slog.LevelWarn && q.b != nil {
		return true
	}
	if l == slog.LevelInfo {
		l = slog.LevelDebug
	}
	return q.Handler.Enabled(ctx, l)
}

func (q quieter) WithAttrs(a []slog.Attr) slog.Handler { return quieter{q.Handler.WithAttrs(a), q.b} }
func (q quieter) WithGroup(n string) slog.Handler      { return quieter{q.Handler.WithGroup(n), q.b} }
