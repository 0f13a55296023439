package awsiot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// MQTT is what the Shadow needs of a client: *fennec.Client and *awsiot.Client both are.
type MQTT interface {
	Publish(ctx context.Context, m *fennec.Message) error
	Subscribe(ctx context.Context, h fennec.MessageHandler, subs ...packet.Subscription) (*packet.Suback, error)
}

// Shadow is one Device Shadow of a thing: the classic shadow (name "") or a named one. Requests
// carry a random client token, and each waits for the accepted or rejected answer with that
// token; answers to other clients' requests are ignored. Methods are safe for concurrent use.
type Shadow struct {
	c      MQTT
	thing  string
	name   string
	prefix string // $aws/things/<thing>/shadow[/name/<name>]

	r *requester
}

// NewShadow returns the shadow name of thing ("" for the classic shadow).
func NewShadow(c MQTT, thing, name string) *Shadow {
	p := "$aws/things/" + thing + "/shadow"
	if name != "" {
		p += "/name/" + name
	}
	return &Shadow{c: c, thing: thing, name: name, prefix: p, r: newRequester(c)}
}

// Topic returns the shadow's topic for op ("get", "update/delta", ...).
func (s *Shadow) Topic(op string) string { return s.prefix + "/" + op }

// State is a shadow's state: what the application wants (Desired), what the device reports
// (Reported), and, in what Get returns, the difference (Delta: desired values that reported
// lacks or holds differently).
type State struct {
	Desired  map[string]any `json:"desired,omitempty"`
	Reported map[string]any `json:"reported,omitempty"`
	Delta    map[string]any `json:"delta,omitempty"`
}

// Document is an accepted answer: the state (all of it for Get, what was updated for
// Update), its metadata (a timestamp per value), the version and the service's timestamp.
type Document struct {
	State       State           `json:"state"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	Version     int64           `json:"version"`
	Timestamp   int64           `json:"timestamp"`
	ClientToken string          `json:"clientToken,omitempty"`
}

// Delta is a message of update/delta: the desired values the device has not reported yet.
type Delta struct {
	State     map[string]any  `json:"state"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	Version   int64           `json:"version"`
	Timestamp int64           `json:"timestamp"`
}

// Update is a request to update: values to set in desired and reported (a nil value in a map
// deletes that key), and the version the update applies to (0: any).
type Update struct {
	Desired  map[string]any
	Reported map[string]any
	// ClearDesired and ClearReported delete the whole section.
	ClearDesired, ClearReported bool
	// Version, when non-zero, makes the update fail with ErrVersionConflict unless the
	// shadow is at that version (optimistic locking).
	Version int64
}

// ShadowError is a rejected request: AWS's code (400, 401, 403, 404, 409, 413, 429, 500) and
// message.
type ShadowError struct {
	Op      string
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *ShadowError) Error() string {
	return fmt.Sprintf("awsiot: shadow %s rejected: %d %s", e.Op, e.Code, e.Message)
}

// Is matches ErrShadowNotFound (404) and ErrVersionConflict (409).
func (e *ShadowError) Is(target error) bool {
	t, ok := target.(*ShadowError)
	return ok && t.Op == "" && t.Code == e.Code
}

// Sentinels for errors.Is.
var (
	ErrShadowNotFound  = &ShadowError{Code: 404, Message: "no such shadow"}
	ErrVersionConflict = &ShadowError{Code: 409, Message: "version conflict"}
)

// Get returns the whole shadow document; ErrShadowNotFound when there is none.
func (s *Shadow) Get(ctx context.Context) (*Document, error) {
	var doc Document
	if err := s.request(ctx, "get", map[string]any{}, &doc); err != nil {
		return nil, err
	}
	return &doc, nil
}

// Update updates the shadow and returns the accepted answer: the updated values, and the
// shadow's new version.
func (s *Shadow) Update(ctx context.Context, u Update) (*Document, error) {
	state := map[string]any{}
	switch {
	case u.ClearDesired:
		state["desired"] = nil
	case u.Desired != nil:
		state["desired"] = u.Desired
	}
	switch {
	case u.ClearReported:
		state["reported"] = nil
	case u.Reported != nil:
		state["reported"] = u.Reported
	}
	if len(state) == 0 {
		return nil, errors.New("awsiot: shadow update with nothing to update")
	}
	req := map[string]any{"state": state}
	if u.Version != 0 {
		req["version"] = u.Version
	}
	var doc Document
	if err := s.request(ctx, "update", req, &doc); err != nil {
		return nil, err
	}
	return &doc, nil
}

// Delete deletes the shadow and returns the version it had; ErrShadowNotFound when there is
// none.
func (s *Shadow) Delete(ctx context.Context) (int64, error) {
	var doc Document
	if err := s.request(ctx, "delete", map[string]any{}, &doc); err != nil {
		return 0, err
	}
	return doc.Version, nil
}

// OnDelta subscribes to update/delta: h runs for each delta the service publishes (on the
// client's handler goroutine).
func (s *Shadow) OnDelta(ctx context.Context, h func(Delta)) error {
	_, err := s.c.Subscribe(ctx, func(m *fennec.Message) {
		var d Delta
		if json.Unmarshal(m.Payload, &d) == nil {
			h(d)
		}
	}, packet.Subscription{Filter: s.Topic("update/delta"), QoS: 1})
	return err
}

// OnDocuments subscribes to update/documents: h gets each update's previous and current
// documents as JSON.
func (s *Shadow) OnDocuments(ctx context.Context, h func(json.RawMessage)) error {
	_, err := s.c.Subscribe(ctx, func(m *fennec.Message) { h(append(json.RawMessage(nil), m.Payload...)) },
		packet.Subscription{Filter: s.Topic("update/documents"), QoS: 1})
	return err
}

// request publishes req with a new client token to op and waits for the answer to it.
func (s *Shadow) request(ctx context.Context, op string, req map[string]any, out *Document) error {
	a, err := s.r.do(ctx, s.Topic(op), s.Topic(op+"/accepted"), s.Topic(op+"/rejected"), req)
	if err != nil {
		return fmt.Errorf("awsiot: shadow %s: %w", op, err)
	}
	if !a.accepted {
		e := &ShadowError{Op: op}
		if err := json.Unmarshal(a.payload, e); err != nil {
			return fmt.Errorf("awsiot: shadow %s rejected with an answer that is not JSON: %q", op, a.payload)
		}
		e.Op = op
		return e
	}
	if err := json.Unmarshal(a.payload, out); err != nil {
		return fmt.Errorf("awsiot: shadow %s: accepted answer is not a document: %w", op, err)
	}
	return nil
}
