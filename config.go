// Configuration: Config, its defaults and checks, server URLs, backoff policies.

package fennec

import (
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fennec-mqtt/fennec/mqttconn"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/session"
)

// Config configures a Client. It is a plain struct: the zero value of every field has a
// documented meaning, and only Server is required.
type Config struct {
	// Server is the broker URL: mqtt://host[:1883], mqtts://host[:8883], ws://host[:80][/path],
	// wss://host[:443][/path]. A bare host:port means mqtt://. Userinfo in the URL sets
	// Username and Password when those fields are empty.
	Server string
	// Servers are more brokers to fail over to (URLs as Server): a connection attempt that
	// fails moves on to the next, Server first, round and round; the session (ClientID, Store,
	// queued messages) goes along, and resumes where the new broker has it (a cluster, or
	// bridged brokers with a shared session store) — elsewhere the broker starts it afresh and
	// the client sends what it had queued. The TLS configuration is shared: the name verified is
	// each broker's host unless TLSConfig.ServerName is set.
	Servers []string
	// ClientID identifies the session. Zero: "fennec-" + 16 random hex digits, with a clean
	// session that ends with the connection (CleanStart true, no Session Expiry), since nobody
	// could resume it; a persistent session or a Store needs a stable ID, so set it then.
	ClientID string
	// Username and Password are sent in CONNECT when not empty. The password is never logged.
	Username string
	Password []byte
	// Version is the protocol: packet.V5 or packet.V311. Zero: packet.V5. A broker that
	// refuses it fails Connect, unless VersionFallback is set.
	Version packet.Version
	// VersionFallback: when Version is MQTT 5 and the broker refuses it at Connect (CONNACK
	// 0x84 Unsupported Protocol Version, or the MQTT 3.1.1 CONNACK with return code 1 that a
	// broker without MQTT 5 answers), Connect connects again at once with MQTT 3.1.1, and the
	// client keeps 3.1.1 (Client.Version says which). The MQTT 5 properties of the
	// configuration are then not sent. It applies to Connect's own attempt, not to
	// ConnectRetry's background attempts. Off by default: a program asks for the version it
	// was written for.
	VersionFallback bool
	// KeepAlive is the keep alive interval. Zero: 60 s; negative: keep alive off. A dead
	// connection is detected within 1.5 × KeepAlive even when TCP stays half-open.
	KeepAlive time.Duration
	// CleanStart discards any session the broker keeps for ClientID (3.1.1: clean session).
	CleanStart bool
	// SessionExpiry (MQTT 5) is how long the broker keeps the session after the connection
	// closes. Zero: the session ends with the connection; for 3.1.1 the broker decides.
	SessionExpiry time.Duration
	// Will is published by the broker when the connection drops without DISCONNECT; nil: none.
	Will *Message
	// ConnectProperties are extra MQTT 5 CONNECT properties (user properties, authentication
	// method, request problem information …). Receive Maximum, Maximum Packet Size and
	// Session Expiry Interval come from the fields above. Nil: none. A pointer, so that a
	// client without them (most) does not hold an empty set of every property.
	ConnectProperties *packet.Properties
	// TLSConfig is used for mqtts:// and wss://. Nil: system roots, host name verification on.
	// ServerName defaults to the URL's host.
	TLSConfig *tls.Config
	// Dial opens TCP connections; nil: a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// WebSocketPath is the HTTP path for ws:// and wss://. Zero: the URL's path, else "/mqtt".
	WebSocketPath string
	// WebSocketPathFunc, when set, gives the path (with its query) of each WebSocket
	// connection just before it is opened, replacing WebSocketPath: a URL signed per
	// connection, such as AWS IoT's SigV4 one, which expires (awsiot.Config.WebSocket).
	WebSocketPathFunc func(ctx context.Context) (string, error)
	// ConnectTimeout bounds each connection attempt (DNS, TCP, TLS, WebSocket, CONNACK).
	// Zero: 30 s.
	ConnectTimeout time.Duration

	// DisableReconnect stops the client after the first lost connection. Zero: reconnect.
	DisableReconnect bool
	// Resubscribe says when a reconnect sends the client's subscriptions again. Zero
	// (ResubscribeAuto): always on MQTT 5, with Retain Handling 1 so that a broker that kept
	// them sends no retained message again; on 3.1.1 only when the broker lost the session, since
	// there a SUBSCRIBE makes the broker resend retained messages.
	Resubscribe ResubscribePolicy
	// ConnectRetry makes Connect return at once and keep trying in the background, queueing
	// publishes meanwhile. Zero: Connect makes one attempt and returns its error.
	ConnectRetry bool
	// Backoff returns the wait before a reconnect, where attempt (1, 2, …) counts the lost
	// connections and failed attempts since the last connection that stayed up for
	// BackoffResetAfter: every loss is followed by a wait, and the wait grows while the broker
	// keeps dropping the connection. Backoff(0) is asked after a refusal that retrying cannot
	// fix (see Permanent) and should return the maximum. Zero: DefaultBackoff, exponential from
	// 100 ms doubling to 60 s with full jitter (a random wait in [0, d]).
	Backoff func(attempt int) time.Duration
	// BackoffResetAfter is how long a connection must stay up before the backoff starts again
	// from attempt 1. Zero: 30 s.
	BackoffResetAfter time.Duration
	// OnConnectionUp is called after every successful CONNACK, on the handler goroutine.
	OnConnectionUp func(c *Client, ack *packet.Connack)
	// OnConnectionLost is called with the cause when an established connection ends (not
	// after Disconnect or Close), on the handler goroutine.
	OnConnectionLost func(c *Client, err error)
	// OnConnectError is called with the *ConnectError of every reconnect attempt that failed
	// (and of the first attempts with ConnectRetry), on the handler goroutine. Permanent(err)
	// tells a refusal that retrying cannot fix (bad credentials, not authorised, client ID
	// rejected, protocol version unsupported): the client keeps trying at the maximum backoff,
	// and an application may rather stop it.
	OnConnectError func(c *Client, err error)
	// DefaultHandler receives messages that match no subscription's filter (for example
	// queued by a persistent session before Subscribe was called). Nil: they are dropped.
	DefaultHandler MessageHandler

	// ReceiveMaximum (MQTT 5) is how many unacknowledged QoS 1/2 messages the broker may send
	// us at once; more is a protocol error. Zero: 256.
	ReceiveMaximum uint16
	// MaxInflightQoS2 caps, within MaxInflight, the outbound QoS 2 messages whose exchange is
	// not finished; order is kept (a QoS 2 message that must wait holds back what follows).
	// Zero: DefaultMaxInflight311 (20) on an MQTT 3.1.1 connection, none on MQTT 5 (the
	// broker's Receive Maximum covers it). 65535: no cap of its own.
	MaxInflightQoS2 uint16
	// Authenticator (MQTT 5) runs enhanced authentication on every connection: its method and
	// initial data in CONNECT, its answers to the broker's AUTH challenges, its check of the
	// CONNACK's data. Client.Reauthenticate runs it again on a live connection.
	Authenticator Authenticator
	// FollowServerReference (MQTT 5): after a CONNACK or DISCONNECT with 0x9C Use another
	// server or 0x9D Server moved and a Server Reference, the next connection goes to that
	// server ("host" or "host:port"; a space-separated list: its first entry), with the same
	// scheme, TLS configuration (the name verified is the new host unless TLSConfig names one)
	// and session, until another reference or Close. Off: the reference is only reported
	// (ReasonError.ServerReference) and the client reconnects where it was.
	FollowServerReference bool
	// TopicAliases (MQTT 5) is how many Topic Aliases the client may set on what it publishes,
	// at most the broker's Topic Alias Maximum: the first message on a topic carries the topic
	// and an alias, the next ones the alias alone, which saves the topic's bytes on a link
	// where they count. When all are taken, the least recently used alias goes to the new
	// topic. Zero (the default): none.
	TopicAliases uint16
	// TopicAliasMaximum (MQTT 5) is how many Topic Aliases the broker may set on the messages
	// it sends (each then names its topic by a number after the first message, saving the
	// topic's bytes). Zero: none, and a broker that sets one anyway breaks the protocol. An
	// alias above the maximum, or one used before it was set, ends the connection with
	// DISCONNECT 0x94 Topic Alias invalid [MQTT-3.3.2-9]. The aliases live as long as the
	// connection [MQTT-3.3.2-7].
	TopicAliasMaximum uint16
	// MaxPacketSize is the largest packet accepted from the broker; MQTT 5 brokers are told in
	// CONNECT and do not send larger ones. Zero: packet.DefaultMaxPacketSize (1 MiB). A 3.1.1
	// broker cannot be told: a larger PUBLISH from it is read past without being held,
	// acknowledged and counted (Stats.DroppedOversize), and no handler sees it; any other
	// larger packet ends the connection with a *packet.Error (PacketTooLarge). Memory for a
	// packet follows the bytes received, whatever length the broker claims.
	MaxPacketSize uint32
	// MaxInflight caps outbound QoS 1/2 messages awaiting acknowledgement, besides the
	// broker's Receive Maximum (MQTT 5) and MaxInflightQoS2. Zero: 1000.
	MaxInflight int
	// MaxOfflineQueue bounds the messages accepted by Publish but not yet sent (while offline,
	// or while the in-flight window is full). Publish then waits when connected and fails with
	// ErrQueueFull when offline. Zero: 1000.
	MaxOfflineQueue int
	// Store keeps outbound QoS 1/2 messages and inbound QoS 2 state. Nil: kept in the client's
	// memory only (they survive reconnects, not restarts). Use filestore.Open (session/filestore) to
	// survive restarts. The caller closes the store after Disconnect.
	Store session.Store

	// Logger receives connection events; nil: silent.
	Logger *slog.Logger
	// Trace observes every packet sent and received and connection facts (TLS version,
	// cipher suite, peer certificate) — the CLI's --debug.
	Trace func(TraceEvent)
}

// TraceEvent is one packet or connection fact passed to Config.Trace.
type TraceEvent = mqttconn.Event

// Clone returns a copy of c (slices and pointers shared).
func (c *Config) Clone() *Config {
	cc := *c
	return &cc
}

// ServerURL is a parsed broker URL.
type ServerURL struct {
	Scheme      string // "mqtt", "mqtts", "ws" or "wss"
	Host        string // host name or IP address, without brackets
	Port        int
	Path        string // WebSocket path ("" for mqtt/mqtts)
	Username    string
	Password    string
	HasPassword bool
}

// Addr returns host:port.
func (u *ServerURL) Addr() string { return net.JoinHostPort(u.Host, strconv.Itoa(u.Port)) }

// TLS reports whether the scheme uses TLS.
func (u *ServerURL) TLS() bool { return u.Scheme == "mqtts" || u.Scheme == "wss" }

// String returns the URL without its password.
func (u *ServerURL) String() string {
	s := u.Scheme + "://" + u.Addr()
	if u.Path != "" {
		s += u.Path
	}
	return s
}

// ParseURL parses a broker URL: mqtt://host[:1883], mqtts://host[:8883], ws://host[:80]/path,
// wss://host[:443]/path. "tcp", "ssl" and "tls" are accepted as aliases of mqtt and mqtts; a
// string without a scheme is taken as mqtt://host[:port].
func ParseURL(raw string) (*ServerURL, error) {
	if raw == "" {
		return nil, fmt.Errorf("fennec: empty server URL")
	}
	if !strings.Contains(raw, "://") {
		raw = "mqtt://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("fennec: server URL: %w", err)
	}
	su := &ServerURL{Scheme: strings.ToLower(u.Scheme), Host: u.Hostname()}
	switch su.Scheme {
	case "tcp", "mqtt":
		su.Scheme, su.Port = "mqtt", 1883
	case "ssl", "tls", "mqtts", "tcps", "mqtt+ssl":
		su.Scheme, su.Port = "mqtts", 8883
	case "ws":
		su.Port = 80
	case "wss":
		su.Port = 443
	default:
		return nil, fmt.Errorf("fennec: server URL %q: unknown scheme %q (want mqtt, mqtts, ws or wss)", redact(u), u.Scheme)
	}
	if su.Host == "" {
		return nil, fmt.Errorf("fennec: server URL %q has no host", redact(u))
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("fennec: server URL %q: bad port %q", redact(u), p)
		}
		su.Port = n
	}
	if su.Scheme == "ws" || su.Scheme == "wss" {
		su.Path = u.EscapedPath()
		if u.RawQuery != "" {
			su.Path += "?" + u.RawQuery
		}
	} else if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("fennec: server URL %q: a path makes sense only for ws:// and wss://", redact(u))
	}
	if u.User != nil {
		su.Username = u.User.Username()
		su.Password, su.HasPassword = u.User.Password()
	}
	return su, nil
}

func redact(u *url.URL) string { return u.Redacted() }

// ResubscribePolicy says when a reconnect sends the client's subscriptions again.
//
// The protocol says a broker that reports Session Present 1 kept them. mosquitto 2.0.11 with
// persistence, killed with SIGKILL and restarted from a snapshot taken after a client's CONNECT
// and before its SUBSCRIBE, reports the session present without the subscription: a client that
// trusts it receives nothing, silently (TestResubscribeAfterBrokerCrash).
type ResubscribePolicy int

const (
	// ResubscribeAuto: ResubscribeAlways on MQTT 5, ResubscribeWhenLost on 3.1.1.
	ResubscribeAuto ResubscribePolicy = iota
	// ResubscribeAlways sends them on every reconnect. On MQTT 5 they ask for retained
	// messages only if the subscription is new (Retain Handling 1); a 3.1.1 broker sends its
	// retained messages again.
	ResubscribeAlways
	// ResubscribeWhenLost sends them only when the broker reports the session lost.
	ResubscribeWhenLost
)

// DefaultMaxInflight311 is how many QoS 2 messages an MQTT 3.1.1 connection keeps in flight
// when Config.MaxInflightQoS2 is zero. 3.1.1 brokers announce no limit, and the stock ones keep
// their own on the QoS 2 exchanges they hold open: mosquitto 2.0.11 and VerneMQ default to
// max_inflight_messages 20, and mosquitto drops the connection of a 3.1.1 client that has more
// QoS 2 messages in flight, after answering some of them with a PUBREC it does not honour. With
// 100 in flight 45–91 of 5,000 QoS 2 messages completed in 30 s, with 20 all of them
// (TestDefaultWindow311Mosquitto). QoS 1 messages, which brokers acknowledge at once, are held
// only to Config.MaxInflight (1,000 by default; it was 20 for them too, which bounded QoS 1
// throughput to 20 messages per round trip: against a broker 50 ms away, 400 per second).
const DefaultMaxInflight311 = 20

// DefaultBackoff is the reconnect policy used when Config.Backoff is nil: 100 ms doubling per
// attempt up to 60 s, with full jitter.
func DefaultBackoff(attempt int) time.Duration {
	return ExponentialBackoff(100*time.Millisecond, 60*time.Second)(attempt)
}

// ExponentialBackoff returns a policy starting at min and doubling per attempt up to max, with
// full jitter: the wait is random in [0, d], which spreads a fleet that lost its broker at one
// moment over the whole interval. Attempt 0 (a refusal that retrying cannot fix) gets max,
// without jitter.
func ExponentialBackoff(min, max time.Duration) func(attempt int) time.Duration {
	return func(attempt int) time.Duration {
		if attempt < 1 {
			return max
		}
		d := min
		for i := 1; i < attempt && d < max; i++ {
			d *= 2
		}
		if d > max {
			d = max
		}
		if d <= 0 {
			return 0
		}
		return rand.N(d + 1)
	}
}

func randomClientID() string {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return "fennec-" + hex.EncodeToString(b[:])
}

// applyDefaults fills in what cfg leaves zero and checks what cannot work: the protocol
// version, a Store without a ClientID, credentials from the server URL, and the bounds of the
// keep alive, in-flight window, packet size and offline queue.
func (cfg *Config) applyDefaults(u *ServerURL) error {
	if cfg.Version == 0 {
		cfg.Version = packet.V5
	}
	if cfg.Version != packet.V5 && cfg.Version != packet.V311 {
		return fmt.Errorf("fennec: unsupported protocol version %d (use packet.V5 or packet.V311)", cfg.Version)
	}
	if cfg.ClientID == "" {
		// Nobody can resume a session under an ID made up here: ask for a clean one that ends
		// with the connection, so that the broker keeps nothing for it.
		if cfg.Store != nil {
			return errors.New("fennec: a session Store needs a ClientID: a generated ID cannot resume the session")
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
		// On 3.1.1, which has no Receive Maximum to learn the broker's limit from, QoS 2 is
		// held to DefaultMaxInflight311 as well (qos2Window): stock brokers drop a client
		// beyond theirs (mosquitto 2.0.11 lost QoS 2 messages with 1000).
		cfg.MaxInflight = 1000
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
	return nil
}

// qos2Window is the QoS 2 window of a connection of version v (0: none of its own).
func qos2Window(cfg *Config, v packet.Version) int {
	if cfg.MaxInflightQoS2 > 0 {
		return int(cfg.MaxInflightQoS2)
	}
	if v == packet.V311 {
		return DefaultMaxInflight311
	}
	return 0
}
