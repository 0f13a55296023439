package awsiot

import (
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// DocLimits is the AWS page the limits come from: "AWS IoT Core message broker and protocol
// limits and quotas".
const DocLimits = "https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits"

// Keep-alive range AWS IoT Core accepts.
const (
	MinKeepAlive = 30 * time.Second
	MaxKeepAlive = 1200 * time.Second
)

// Limits are the AWS IoT Core quotas checked before sending. Some are adjustable per account
// (subscriptions per connection, publish rate): raise them here when AWS raised yours.
type Limits struct {
	ClientIDBytes              int // "Client ID size": 128 bytes of UTF-8
	TopicBytes                 int // "Topic size": 256 bytes of UTF-8
	TopicSlashes               int // "Maximum number of slashes in topic and topic filter": 7
	PayloadBytes               int // "Message size": 128 KB
	SubscriptionsPerSubscribe  int // "Maximum subscriptions per subscribe request": 8
	SubscriptionsPerConnection int // "Subscriptions per connection": 50 (adjustable)
	PublishesPerSecond         int // "Publish requests per second per connection": 100
}

// DefaultLimits are AWS's documented defaults (DocLimits).
var DefaultLimits = Limits{
	ClientIDBytes:              128,
	TopicBytes:                 256,
	TopicSlashes:               7,
	PayloadBytes:               128 * 1024,
	SubscriptionsPerSubscribe:  8,
	SubscriptionsPerConnection: 50,
	PublishesPerSecond:         100,
}

// LimitError is a request AWS IoT Core would refuse or cut off, refused before sending.
type LimitError struct {
	Limit      string // "topic size", "QoS", ...
	Value, Max int
	Msg        string
}

func (e *LimitError) Error() string { return "awsiot: " + e.Msg + " (" + DocLimits + ")" }

// CheckClientID checks a client ID.
func (l Limits) CheckClientID(id string) error {
	if len(id) > l.ClientIDBytes {
		return &LimitError{"client ID size", len(id), l.ClientIDBytes, fmt.Sprintf("client ID of %d bytes exceeds AWS IoT Core's %d", len(id), l.ClientIDBytes)}
	}
	if !utf8.ValidString(id) {
		return &LimitError{"client ID", 0, 0, "client ID is not valid UTF-8"}
	}
	return nil
}

// CheckTopic checks a topic name (filter false) or filter (true): size, slashes (the
// "$aws/rules/<rule>/" prefix of Basic Ingest does not count), and the reserved "$" topics:
// only "$aws/..." exists.
func (l Limits) CheckTopic(t string, filter bool) error {
	what := "topic"
	if filter {
		what = "topic filter"
	}
	if len(t) > l.TopicBytes {
		return &LimitError{"topic size", len(t), l.TopicBytes, fmt.Sprintf("%s of %d bytes exceeds AWS IoT Core's %d", what, len(t), l.TopicBytes)}
	}
	counted := t
	if strings.HasPrefix(strings.ToLower(t), "$aws/rules/") {
		if parts := strings.SplitN(t, "/", 4); len(parts) == 4 {
			counted = parts[3]
		}
	}
	if n := strings.Count(counted, "/"); n > l.TopicSlashes {
		return &LimitError{"topic slashes", n, l.TopicSlashes, fmt.Sprintf("%s %q has %d slashes, AWS IoT Core allows %d (8 levels)", what, t, n, l.TopicSlashes)}
	}
	if strings.HasPrefix(t, "$") && !strings.HasPrefix(strings.ToLower(t), "$aws/") {
		return &LimitError{"reserved topic", 0, 0, fmt.Sprintf("%s %q: topics starting with $ are reserved, and AWS IoT Core has only $aws/...", what, t)}
	}
	return nil
}

// guard applies the limits to one client: the subscriptions it holds and its publish rate.
type guard struct {
	l    Limits
	mu   sync.Mutex
	subs map[string]bool
	sent []time.Time // publish times within the last second (a ring of at most PublishesPerSecond)
}

func newGuard(l Limits) *guard { return &guard{l: l, subs: map[string]bool{}} }

func (g *guard) publish(m *fennec.Message, now time.Time) error {
	if m.QoS > 1 {
		return &LimitError{"QoS", int(m.QoS), 1, "QoS 2: AWS IoT Core supports QoS 0 and 1 only (it disconnects a client that publishes at QoS 2); use QoS 1"}
	}
	if err := g.l.CheckTopic(m.Topic, false); err != nil {
		return err
	}
	if len(m.Payload) > g.l.PayloadBytes {
		return &LimitError{"message size", len(m.Payload), g.l.PayloadBytes, fmt.Sprintf("payload of %d bytes exceeds AWS IoT Core's %d", len(m.Payload), g.l.PayloadBytes)}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	cut := now.Add(-time.Second)
	i := 0
	for i < len(g.sent) && !g.sent[i].After(cut) {
		i++
	}
	g.sent = g.sent[i:]
	if len(g.sent) >= g.l.PublishesPerSecond {
		return &LimitError{"publish rate", len(g.sent) + 1, g.l.PublishesPerSecond, fmt.Sprintf("more than %d publishes within one second on one connection: AWS IoT Core throttles past that; pace the publisher or spread it over connections", g.l.PublishesPerSecond)}
	}
	g.sent = append(g.sent, now)
	return nil
}

func (g *guard) subscribe(subs []packet.Subscription) error {
	if len(subs) > g.l.SubscriptionsPerSubscribe {
		return &LimitError{"subscriptions per subscribe", len(subs), g.l.SubscriptionsPerSubscribe, fmt.Sprintf("%d filters in one SUBSCRIBE, AWS IoT Core takes at most %d: split it", len(subs), g.l.SubscriptionsPerSubscribe)}
	}
	for _, s := range subs {
		if s.QoS > 1 {
			return &LimitError{"QoS", int(s.QoS), 1, fmt.Sprintf("subscription %q at QoS 2: AWS IoT Core supports QoS 0 and 1 only", s.Filter)}
		}
		if err := g.l.CheckTopic(s.Filter, true); err != nil {
			return err
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	n := len(g.subs)
	for _, s := range subs {
		if !g.subs[s.Filter] {
			n++
		}
	}
	if n > g.l.SubscriptionsPerConnection {
		return &LimitError{"subscriptions per connection", n, g.l.SubscriptionsPerConnection, fmt.Sprintf("%d subscriptions on one connection, AWS IoT Core allows %d by default (an adjustable quota: set Limits when yours was raised)", n, g.l.SubscriptionsPerConnection)}
	}
	for _, s := range subs {
		g.subs[s.Filter] = true
	}
	return nil
}

func (g *guard) unsubscribe(filters []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, f := range filters {
		delete(g.subs, f)
	}
}
