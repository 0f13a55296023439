// Request/response over MQTT 5 Response Topic and Correlation Data.

package fennec

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/fennec-mqtt/fennec/packet"
)

// Request and response over MQTT 5 (MQTT 5.0 section 4.10): the requester publishes with a
// Response Topic and Correlation Data, the responder publishes its answer to that topic with the
// same Correlation Data.

// requests is the requester's side: one response topic per client, subscribed on first use,
// and the requests waiting for their answer by correlation data.
type requests struct {
	mu      sync.Mutex
	topic   string // the response topic, once subscribed
	waiting map[string]chan *Message
}

// ErrNoResponseTopic is a request without a Response Topic given to Respond.
var ErrNoResponseTopic = errors.New("fennec: respond: the request has no Response Topic")

// Request publishes m with a Response Topic and a fresh Correlation Data and returns the first
// message published to that topic with the same Correlation Data. The response topic is the
// client's own, subscribed at QoS 1 on the first request: under the Response Information the
// broker gives in CONNACK when it gives one, else "fennec/response/CLIENT_ID/RANDOM". ctx bounds
// the whole exchange; a response that comes later is dropped. MQTT 5 only.
func (c *Client) Request(ctx context.Context, m *Message) (*Message, error) {
	if c.cfg.Version != packet.V5 {
		return nil, errors.New("fennec: request: Response Topic and Correlation Data are MQTT 5 properties; this client speaks MQTT 3.1.1")
	}
	topic, err := c.responseTopic(ctx)
	if err != nil {
		return nil, err
	}
	var b [16]byte
	rand.Read(b[:])
	key := string(b[:])
	ch := make(chan *Message, 1)
	req := c.requestState()
	req.mu.Lock()
	if req.waiting == nil {
		req.waiting = map[string]chan *Message{}
	}
	req.waiting[key] = ch
	req.mu.Unlock()
	defer func() {
		req.mu.Lock()
		delete(req.waiting, key)
		req.mu.Unlock()
	}()
	out := *m
	out.Props.SetResponseTopic(topic)
	out.Props.CorrelationData = b[:]
	out.Props.Set(packet.PropCorrelationData)
	if err := c.Publish(ctx, &out); err != nil {
		return nil, fmt.Errorf("fennec: request: %w", err)
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("fennec: request to %q: no response on %s: %w", m.Topic, topic, ctx.Err())
	}
}

// requestState is the client's request state, made by the first request: a client that makes
// none holds none.
func (c *Client) requestState() *requests {
	if r := c.req.Load(); r != nil {
		return r
	}
	c.req.CompareAndSwap(nil, new(requests))
	return c.req.Load()
}

// responseTopic subscribes the client's response topic once.
func (c *Client) responseTopic(ctx context.Context) (string, error) {
	req := c.requestState()
	req.mu.Lock()
	topic := req.topic
	req.mu.Unlock()
	if topic != "" {
		return topic, nil
	}
	var b [6]byte
	rand.Read(b[:])
	prefix := "fennec/response"
	if _, ack := c.ConnectionState(); ack != nil && ack.Props.ResponseInformation != "" {
		prefix = strings.TrimSuffix(ack.Props.ResponseInformation, "/")
	}
	topic = prefix + "/" + c.cfg.ClientID + "/" + hex.EncodeToString(b[:])
	if c.cfg.ClientID == "" {
		topic = prefix + "/" + hex.EncodeToString(b[:])
	}
	if _, err := c.Subscribe(ctx, c.onRequestResponse, packet.Subscription{Filter: topic, QoS: 1, NoLocal: true}); err != nil {
		return "", fmt.Errorf("fennec: request: subscribing the response topic %s: %w", topic, err)
	}
	req.mu.Lock()
	if req.topic == "" {
		req.topic = topic
	}
	topic = req.topic
	req.mu.Unlock()
	return topic, nil
}

func (c *Client) onRequestResponse(m *Message) {
	if !m.Props.Has(packet.PropCorrelationData) {
		return
	}
	req := c.requestState()
	req.mu.Lock()
	ch := req.waiting[string(m.Props.CorrelationData)]
	req.mu.Unlock()
	if ch != nil {
		select {
		case ch <- m:
		default: // a duplicate: the first response stands
		}
	}
}

// Respond publishes reply to the Response Topic of req with req's Correlation Data, as the
// responder of a Request does.
func (c *Client) Respond(ctx context.Context, req, reply *Message) error {
	if !req.Props.Has(packet.PropResponseTopic) || req.Props.ResponseTopic == "" {
		return ErrNoResponseTopic
	}
	out := *reply
	out.Topic = req.Props.ResponseTopic
	if req.Props.Has(packet.PropCorrelationData) {
		out.Props.CorrelationData = bytes.Clone(req.Props.CorrelationData)
		out.Props.Set(packet.PropCorrelationData)
	}
	return c.Publish(ctx, &out)
}
