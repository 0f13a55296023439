package broker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"

	"github.com/fennec-mqtt/fennec/topic"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// session is what the broker knows about one connection's client.
type session struct {
	identity string // certificate identity or username; "" for anonymous clients
	method   string // "certificate", "password", "anonymous"
	rules    *Rules // nil with an ACL: nothing allowed; unused without ACL
	aws      awsClient

	mu      sync.Mutex
	pending map[string]bool // AWS: iot:Subscribe decisions of the SUBSCRIBE being processed
	aliases map[uint16]string

	replaced *mqtt.Client // the old client of the session this connection took over
	// inherited holds that old client and the ones it had inherited from, most recent first, at
	// most maxInherited, kept after the takeover ends: a routing that looked one up before the
	// switch may still reach it (see takeover.go).
	inherited []*mqtt.Client
	late      []packets.Packet // messages routed to it during the takeover (see takeover.go)

	heldMu   sync.Mutex
	held     []heldMsg // stored messages kept out of mochi's table, not yet sent (see flow.go)
	heldGone bool      // taken by a new connection, or the session ended

	drainMu sync.Mutex // one pump at a time (see flow.go)
	flow    flow       // under mu
}

// resolveAlias fills in the topic of an MQTT 5 PUBLISH that uses a topic alias [MQTT-3.3.2-12]:
// mochi resolves aliases only after its authorization check, which would otherwise judge an
// empty topic.
func (s *session) resolveAlias(pk *packets.Packet) {
	if !pk.Properties.TopicAliasFlag || pk.Properties.TopicAlias == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if pk.TopicName != "" {
		if s.aliases == nil {
			s.aliases = map[uint16]string{}
		}
		s.aliases[pk.Properties.TopicAlias] = pk.TopicName
	} else if t, ok := s.aliases[pk.Properties.TopicAlias]; ok {
		pk.TopicName = t
	}
}

func (s *session) setPending(d map[string]bool) {
	s.mu.Lock()
	s.pending = d
	s.mu.Unlock()
}

func (s *session) pendingDecision(filter string) (allowed, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	allowed, ok = s.pending[filter]
	return allowed, ok
}

// hook connects the broker's policies to mochi.
type hook struct {
	mqtt.HookBase
	b        *Broker
	sessions sync.Map // *mqtt.Client → *session, while connected
	// parked holds the session of a client that disconnected and whose MQTT session lives on
	// (3.1.1 clean session 0, MQTT 5 session expiry above zero): mochi still delivers to it,
	// storing QoS 1 and 2 messages for the next connection [MQTT-3.1.2-5], and asks OnACLCheck
	// first. Keyed by client ID, so it holds at most one entry per session mochi keeps.
	parked sync.Map // client ID → parkedSession
	order  sync.Map // client ID → *sendOrder (see order.go)
	ids    sync.Map // client ID → *idMap (see ids.go)
	// takeovers: old *mqtt.Client → takeover, while a new connection inherits its session.
	takeovers sync.Map
	// connackGates: *mqtt.Client → chan struct{}, open until its CONNACK is written
	// (connackfirst.go).
	connackGates sync.Map
	// idMu and idLocks serialize the takeovers of one client ID (idlock.go); idHeld:
	// *mqtt.Client → *idLock it holds
	idMu    sync.Mutex
	idLocks map[string]*idLock
	idHeld  sync.Map
}

type parkedSession struct {
	cl *mqtt.Client
	s  *session
}

func (h *hook) ID() string { return "fennec-broker" }

// OnWill gives back its zero-length payload to a will whose CONNECT the broker rewrote for mochi,
// which refuses an empty will payload although the protocol allows it (checkConnect).
func (h *hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if c, ok := cl.Net.Conn.(*conn); ok && c.emptyWill {
		will.Payload = []byte{}
	}
	return carryWillProps(cl, will), nil
}

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPacketRead,
		mqtt.OnSubscribed, mqtt.OnDisconnect, mqtt.OnPacketEncode, mqtt.OnSessionEstablished,
		mqtt.OnClientExpired, mqtt.OnSessionEstablish, mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped, mqtt.OnPacketProcessed, mqtt.OnPacketSent, mqtt.OnWill, mqtt.OnAuthPacket}, []byte{b})
}

// session returns what the broker knows of a connected client, or nil.
func (h *hook) session(cl *mqtt.Client) *session {
	if v, ok := h.sessions.Load(cl); ok {
		return v.(*session)
	}
	return nil
}

// sessionOrParked is session, also for a client that is offline with its session kept.
func (h *hook) sessionOrParked(cl *mqtt.Client) *session {
	if s := h.session(cl); s != nil {
		return s
	}
	if v, ok := h.parked.Load(cl.ID); ok && v.(parkedSession).cl == cl {
		return v.(parkedSession).s
	}
	return nil
}

func connOf(cl *mqtt.Client) *conn {
	c, _ := cl.Net.Conn.(*conn)
	return c
}

var errRefused = errors.New("broker: connection refused")

func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if c := connOf(cl); c != nil {
		c.v311.Store(pk.ProtocolVersion < 5)
		c.client.Store(cl)
	}
	if h.b.faults.refuseConnect(h.b.srv, cl) {
		h.b.log.Info("CONNECT refused by fault injection", "client", cl.ID, "remote", cl.Net.Remote)
		return errRefused
	}
	if h.b.opts.AWS != nil {
		h.b.opts.AWS.adjustKeepAlive(cl)
	}
	return nil
}

func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	c := connOf(cl)
	s := &session{}
	log := h.b.log.With("client", cl.ID, "remote", cl.Net.Remote, "listener", cl.Net.Listener)
	if a := h.b.opts.AWS; a != nil {
		if err := a.authenticate(cl, c, s, pk); err != nil {
			// AWS IoT Core closes the connection without CONNACK (awsDocPolicyActions).
			log.Warn("connection denied, closing without CONNACK", "reason", err, "aws_doc", awsDocPolicyActions+" "+awsDocPolicyVariables)
			cl.Stop(err)
			return false
		}
		log.Info("device authenticated", "identity", s.identity, "thing", s.aws.thing)
		h.sessions.Store(cl, s)
		return true
	}
	if c != nil && c.scramUser != "" {
		s.identity, s.method = c.scramUser, "scram"
	} else if c != nil && c.tls != nil && len(c.tls.VerifiedChains) > 0 {
		s.identity, s.method = certIdentity(c.tls.PeerCertificates), "certificate"
	} else if pk.Connect.UsernameFlag {
		s.identity, s.method = string(pk.Connect.Username), "password"
	} else {
		s.method = "anonymous"
	}
	acl := h.b.opts.ACL
	refuse := func(code packets.Code, reason string) bool {
		log.Warn("connection refused", "identity", s.identity, "method", s.method, "reason", reason)
		sendRefusal(h.b.srv, cl, code)
		cl.Stop(code)
		return false
	}
	switch {
	case acl == nil:
	case s.method == "certificate", s.method == "scram":
		if u := acl.user(s.identity); u != nil {
			s.rules = &u.Rules
		} else {
			s.rules = acl.Default
		}
	case s.method == "password":
		u := acl.user(s.identity)
		if u == nil || u.Password == "" || !CheckPassword(u.Password, string(pk.Connect.Password)) {
			return refuse(packets.ErrBadUsernameOrPassword, "unknown user or wrong password")
		}
		s.rules = &u.Rules
	default:
		if !acl.Anonymous {
			return refuse(packets.ErrNotAuthorized, "anonymous access is off")
		}
		s.rules = acl.Default
	}
	h.sessions.Store(cl, s)
	log.Debug("client authenticated", "identity", s.identity, "method", s.method)
	return true
}

func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	// The new connection has taken over (or discarded) any session of its client ID: the
	// offline client mochi delivered to is gone, once the messages routed to it are handed on.
	s := h.session(cl)
	if s != nil {
		h.startFlow(cl, s)
		h.deliverLate(cl, s)
	}
	h.parked.Delete(cl.ID)
	if s == nil {
		return
	}
	h.b.log.Info("client connected", "client", cl.ID, "remote", cl.Net.Remote, "listener", cl.Net.Listener,
		"identity", s.identity, "method", s.method, "mqtt", pk.ProtocolVersion, "keepalive", cl.State.Keepalive)
}

func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	// A delivery to an offline client with a persistent session is judged by the rules of the
	// identity that client had: without them every message for it would be refused, and mochi
	// would drop what it must store for the next connection [MQTT-3.1.2-5].
	s := h.sessionOrParked(cl)
	if s == nil && !write {
		// A delivery to the old client of a finished takeover is handed on to the new one
		// (takeover.go): judged by the new one's rules.
		if cur, cs := h.successor(cl); cur != nil {
			cl, s = cur, cs
		}
	}
	if s == nil {
		return false
	}
	var ok, receive bool
	if a := h.b.opts.AWS; a != nil {
		switch {
		case write:
			ok = a.allowedPublish(cl, s, topic)
		default:
			// mochi asks the same question for a SUBSCRIBE's filter and for each delivery. The
			// SUBSCRIBE's decisions were recorded when the packet was read. While a SUBSCRIBE is
			// processed, a delivery on a topic spelled exactly like one of its filters gets that
			// filter's iot:Subscribe decision: a window of microseconds, accepted here.
			if d, pending := s.pendingDecision(topic); pending {
				ok = d
			} else {
				receive = true
				ok = a.allowedReceive(cl, s, topic)
			}
		}
	} else if h.b.opts.ACL == nil {
		return true
	} else if s.rules != nil {
		if write {
			ok = allowed(s.rules.Publish, topic, cl.ID, s.identity)
		} else {
			ok = allowed(s.rules.Subscribe, topic, cl.ID, s.identity)
		}
	}
	if !ok {
		lvl := slog.LevelInfo
		if receive {
			lvl = slog.LevelDebug // per message, not per request
		}
		attrs := []any{"client", cl.ID, "identity", s.identity, "topic", topic, "publish", write, "delivery", receive}
		if h.b.opts.AWS != nil {
			doc := awsDocPolicyActions
			if cl.Properties.ProtocolVersion == 5 && !receive {
				doc += " " + awsDocReasonCodes // answered with 0x87 Not authorized
			}
			attrs = append(attrs, "aws_doc", doc)
		}
		h.b.log.Log(context.Background(), lvl, "not authorized", attrs...)
	}
	return ok
}

func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Connect {
		return pk, nil // CONNECT is read before there is a session
	}
	s := h.session(cl)
	if s == nil {
		return pk, packets.ErrRejectPacket
	}
	if pk.FixedHeader.Type == packets.Publish && cl.Properties.ProtocolVersion == 5 {
		s.resolveAlias(&pk)
	}
	markNoExpiry(&pk)
	a := h.b.opts.AWS
	if a == nil {
		h.renumber(cl, &pk)
		return pk, nil
	}
	pk, v := a.inspect(cl, s, pk)
	if v == nil {
		h.renumber(cl, &pk)
		return pk, nil
	}
	h.b.log.Warn("AWS rule broken, disconnecting", "client", cl.ID, "reason", v.reason, "code", v.code.Code, "aws_doc", v.doc)
	if cl.Properties.ProtocolVersion == 5 {
		_ = h.b.srv.DisconnectClient(cl, v.code)
	} else {
		cl.Stop(v.code)
	}
	return pk, packets.ErrRejectPacket
}

func (h *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if s := h.session(cl); s != nil {
		s.setPending(nil)
	}
}

func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && cl.Properties.ProtocolVersion == 5 {
		// mochi enforces its MaximumPacketSize but does not announce it [MQTT-3.2.2-15].
		pk.Properties.MaximumPacketSize = h.b.opts.MaxPacketSize
		// mochi resolves the Topic Aliases a client sets, up to its capability, but does not
		// say so; without Topic Alias Maximum in CONNACK a client may set none [MQTT-3.2.2-17].
		pk.Properties.TopicAliasMaximum = h.b.srv.Options.Capabilities.TopicAliasMaximum
		if c := connOf(cl); c != nil && c.scramFinal != "" {
			pk.Properties.AuthenticationMethod = SCRAMMethod
			pk.Properties.AuthenticationData = []byte(c.scramFinal)
		}
		if h.b.opts.AWS != nil {
			// Not AWS's: the emulation says what it is, so that a client's hints can name AWS's
			// causes for what follows (the Fennec CLI does).
			pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: EmulationProperty, Val: "aws-iot"})
		}
	}
	h.waitConnack(cl, pk)
	if pk = h.gateWrite(cl, pk); pk.FixedHeader.Type == packets.Reserved {
		return pk
	}
	h.firstDelivery(cl, &pk)
	addSubscriptionIDs(cl, &pk)
	stripStampedExpiry(&pk)
	restoreWillProps(cl, &pk)
	h.restoreID(cl, &pk)
	h.b.faults.delayAck(pk)
	return pk
}

func (h *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.closeConnackGate(cl) // a connection that ended before its CONNACK was written
	if expire {
		// mochi deletes the client ID's entry next, unless cl was taken over: hold the ID
		// until the listener is done with cl (connectionEnded), so that a connection taking
		// the ID meanwhile is not deleted in cl's place (idlock.go).
		h.lockID(cl)
	}
	v, ok := h.sessions.Load(cl)
	if !ok {
		return
	}
	// Parked before it leaves the connected sessions: a message routed meanwhile finds it.
	defer h.sessions.Delete(cl)
	// The session outlives the connection unless it ends with it. mochi routes messages to cl
	// while cl is the client of its ID, and also while a new connection is taking the session
	// over (until OnSessionEstablished): a connection that closes in the middle of a takeover
	// keeps its identity for them.
	keep := !expire
	if cur, found := h.b.srv.Clients.Get(cl.ID); !found || cur != cl {
		_, inTakeover := h.takeovers.Load(cl)
		keep = keep && inTakeover
	}
	if keep {
		v.(*session).setPending(nil) // a SUBSCRIBE cut off by the disconnection decides nothing
		h.parked.Store(cl.ID, parkedSession{cl: cl, s: v.(*session)})
	} else if expire && !cl.IsTakenOver() {
		h.order.Delete(cl.ID)
		h.ids.Delete(cl.ID)
	}
	h.b.log.Info("client disconnected", "client", cl.ID, "remote", cl.Net.Remote, "reason", err, "session_kept", keep)
}

// connectionEnded runs when mochi is done with a connection (its establish returned). mochi
// (v2.7.9) registers a client as the holder of its session before writing the CONNACK and
// re-sending the stored messages, and when either write fails (a client that left at once)
// returns without OnSessionEstablished or OnDisconnect: the client stays registered as an
// offline session, but the broker's own records never learn it. The takeover is finished here
// (the messages routed during the takeover are stored in the session; those held back from
// the re-send stay on its list), then the disconnection is handled as mochi's would have been.
func (h *hook) connectionEnded(cl *mqtt.Client, err error) {
	defer h.unlockID(cl) // taken in OnDisconnect for mochi's deletion of the client ID
	s := h.session(cl)
	if s == nil {
		return // OnDisconnect ran, or the client was never authenticated
	}
	h.deliverLate(cl, s) // cl is closed: stored, sent at the next connection
	expire := (cl.Properties.ProtocolVersion == 5 && cl.Properties.Props.SessionExpiryInterval == 0) ||
		(cl.Properties.ProtocolVersion < 5 && cl.Properties.Clean)
	h.b.log.Debug("connection ended before its session was established", "client", cl.ID, "error", err)
	h.OnDisconnect(cl, err, expire)
	if cur, ok := h.b.srv.Clients.Get(cl.ID); expire && ok && cur == cl && !cl.IsTakenOver() {
		cl.ClearInflights()
		h.b.srv.UnsubscribeClient(cl)
		h.b.srv.Clients.Delete(cl.ID)
	}
}

// OnClientExpired is called when mochi discards an offline session whose expiry has passed.
func (h *hook) OnClientExpired(cl *mqtt.Client) {
	if s := h.session(cl); s != nil {
		s.mu.Lock()
		if s.replaced != nil {
			h.takeovers.Delete(s.replaced)
		}
		s.mu.Unlock()
	}
	h.sessions.Delete(cl) // a connection that ended before OnDisconnect (failed CONNACK write)
	if s := h.sessionOrParked(cl); s != nil {
		h.dropShelf(s)
	}
	if v, ok := h.parked.Load(cl.ID); ok && v.(parkedSession).cl == cl {
		h.parked.Delete(cl.ID)
	}
	h.order.Delete(cl.ID)
	h.ids.Delete(cl.ID)
	if h.b.opts.AWS != nil {
		h.b.log.Info("offline session expired", "client", cl.ID, "aws_doc", awsDocPersistentSessions)
	} else {
		h.b.log.Info("offline session expired", "client", cl.ID)
	}
}

// v311Return maps MQTT 5 CONNACK reason codes to MQTT 3.1.1 return codes (§3.2.2.3), which mochi
// does only in part.
var v311Return = map[byte]byte{
	0x84: 0x01, // unsupported protocol version → unacceptable protocol version
	0x85: 0x02, // client identifier not valid → identifier rejected
	0x86: 0x04, // bad user name or password
	0x87: 0x05, // not authorized
	0x8C: 0x05, // bad authentication method → not authorized
	0x8A: 0x05, // banned → not authorized
}

// sendRefusal writes a refusing CONNACK in the client's protocol version.
func sendRefusal(srv *mqtt.Server, cl *mqtt.Client, code packets.Code) {
	if cl.Properties.ProtocolVersion < 5 {
		rc, ok := v311Return[code.Code]
		if !ok {
			rc = 0x03 // server unavailable
		}
		code = packets.Code{Code: rc}
	}
	_ = srv.SendConnack(cl, code, false, nil)
}

// addSubscriptionIDs gives a retained message sent to an MQTT 5 client the Subscription
// Identifiers of its subscriptions that match it, which mochi (v2.7.9) leaves out of the
// retained messages it sends at subscribe [MQTT-3.3.4-3]. Live messages carry them already.
func addSubscriptionIDs(cl *mqtt.Client, pk *packets.Packet) {
	if pk.FixedHeader.Type != packets.Publish || !pk.FixedHeader.Retain || cl.Properties.ProtocolVersion != 5 || len(pk.Properties.SubscriptionIdentifier) > 0 {
		return
	}
	var ids []int
	for f, sub := range cl.State.Subscriptions.GetAll() {
		if !topic.Match(f, pk.TopicName) {
			continue
		}
		if sub.Identifier > 0 && !slices.Contains(ids, sub.Identifier) {
			ids = append(ids, sub.Identifier)
		}
	}
	if len(ids) > 0 {
		slices.Sort(ids)
		pk.Properties.SubscriptionIdentifier = ids
	}
}
