package awsiot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// requester is the request/response pattern of AWS's MQTT services (Shadow, Jobs, Fleet
// Provisioning): a request published with a random client token, answered on an accepted or a
// rejected topic with the same token. Answers to other clients' requests are ignored.
type requester struct {
	c MQTT

	mu      sync.Mutex
	subbed  map[string]bool // accepted/rejected filters subscribed
	waiting map[string]chan answer
}

type answer struct {
	accepted bool
	payload  []byte
}

func newRequester(c MQTT) *requester {
	return &requester{c: c, subbed: map[string]bool{}, waiting: map[string]chan answer{}}
}

// do subscribes acceptedFilter and rejectedFilter (once each), publishes req with a new client
// token to topic at QoS 1 and waits for the answer that carries the token.
func (r *requester) do(ctx context.Context, topic, acceptedFilter, rejectedFilter string, req map[string]any) (answer, error) {
	if err := r.subscribe(ctx, acceptedFilter, true); err != nil {
		return answer{}, err
	}
	if err := r.subscribe(ctx, rejectedFilter, false); err != nil {
		return answer{}, err
	}
	var b [16]byte
	rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	req["clientToken"] = token
	ch := make(chan answer, 1)
	r.mu.Lock()
	r.waiting[token] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.waiting, token)
		r.mu.Unlock()
	}()
	payload, err := json.Marshal(req)
	if err != nil {
		return answer{}, err
	}
	if err := r.c.Publish(ctx, &fennec.Message{Topic: topic, QoS: 1, Payload: payload}); err != nil {
		return answer{}, err
	}
	select {
	case a := <-ch:
		return a, nil
	case <-ctx.Done():
		return answer{}, fmt.Errorf("no answer on %s or %s: %w (the policy must allow iot:Subscribe and iot:Receive on them)", acceptedFilter, rejectedFilter, ctx.Err())
	}
}

// subscribe subscribes filter once; its messages are routed to the waiting request by token.
func (r *requester) subscribe(ctx context.Context, filter string, accepted bool) error {
	r.mu.Lock()
	done := r.subbed[filter]
	r.mu.Unlock()
	if done {
		return nil
	}
	h := func(m *fennec.Message) {
		var t struct {
			ClientToken string `json:"clientToken"`
		}
		if json.Unmarshal(m.Payload, &t) != nil || t.ClientToken == "" {
			return
		}
		r.mu.Lock()
		ch := r.waiting[t.ClientToken]
		r.mu.Unlock()
		if ch != nil {
			select {
			case ch <- answer{accepted, append([]byte(nil), m.Payload...)}:
			default: // a duplicate (QoS 1 resend): the first answer stands
			}
		}
	}
	if _, err := r.c.Subscribe(ctx, h, packet.Subscription{Filter: filter, QoS: 1}); err != nil {
		return err
	}
	r.mu.Lock()
	r.subbed[filter] = true
	r.mu.Unlock()
	return nil
}
