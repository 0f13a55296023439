package cmdutil

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/fennec-mqtt/fennec/pki"
)

// This file is the seam between the commands and the client library: the commands speak in
// terms of connSpec, message and mqttClient, and client.go adapts them to the fennec package.
// Keeping the seam small keeps the commands testable and the adapter obvious.

// ConnSpec is everything a command knows about how to reach the broker.
type ConnSpec struct {
	Server        string // mqtt://host:port or mqtts://host:port
	Host          string // host name or address, for hints
	Port          int
	TLS           *tls.Config // nil: plain TCP
	ClientID      string
	Username      string
	Password      []byte
	HasPassword   bool
	Version       int // 4 (3.1.1) or 5
	KeepAlive     time.Duration
	CleanStart    bool
	SessionExpiry *uint32
	Will          *Message
	WillDelay     *uint32
	Props         propSet // -D, by command
	Trace         *Tracer // nil: no --debug
	ClientCert    bool    // a client certificate was configured
	AWS           bool    // AWS IoT Core or its emulation: --aws, the profile, or an AWS IoT endpoint
	// VersionFallback: no version was chosen (-V, a profile): a broker that refuses MQTT 5
	// gets MQTT 3.1.1, with a note on notes (nil: quiet).
	VersionFallback bool
	notes           io.Writer
	Timeout         time.Duration
	Reconnect       bool            // reconnect after a lost connection (sub); pub fails instead
	OnLost          func(err error) // called when an established connection is lost
	// OnConnectError is called when a reconnect attempt fails (sub).
	OnConnectError func(err error)
	OnMessage      func(*Message) // receives messages that match no subscription of this run
	// OnPacket, when set, sees the type of every packet sent (outbound) and received.
	OnPacket func(outbound bool, packetType byte)
	TLSFacts *TLSFacts
	capture  *pcapFile // --pcap: record the connections
	// TLSOptions holds the TLS flags unloaded, for the doctor (ConnFlags.DeferTLS).
	TLSOptions *pki.ClientOptions
}

// Message is one application Message, either sent or received.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retain   bool
	Dup      bool
	PacketID uint16
	Props    msgProps
	Time     time.Time
}

// msgProps are the MQTT 5 PUBLISH (and will) properties a user can see or set.
type msgProps struct {
	PayloadFormat   *byte
	MessageExpiry   *uint32
	TopicAlias      *uint16
	ResponseTopic   string
	CorrelationData []byte
	ContentType     string
	SubscriptionIDs []int
	User            [][2]string
}

// Subscription is one topic filter with its options.
type Subscription struct {
	Filter            string
	QoS               byte
	RetainAsPublished bool // MQTT 5
}

// MQTTClient is what the commands need from a connected client.
type MQTTClient interface {
	Publish(ctx context.Context, m *Message) error
	// Subscribe returns one granted QoS (or failure reason code ≥ 0x80) per subscription.
	Subscribe(ctx context.Context, h func(*Message), subs []Subscription) ([]byte, error)
	Unsubscribe(ctx context.Context, filters []string) error
	Disconnect(ctx context.Context) error
	TLSState() *tls.ConnectionState
}

func SplitHostPort(addr string) (string, int) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	n, _ := strconv.Atoi(p)
	return h, n
}
