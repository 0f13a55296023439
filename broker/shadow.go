package broker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The Device Shadow service of the AWS emulation: the MQTT topics of classic and named shadows
// (get, update, delete, their accepted and rejected answers, update/delta and
// update/documents), versions, client tokens and the document merge rules.
// Sources: "Device Shadow MQTT topics" and "Device Shadow service documents".
const (
	awsDocShadowTopics    = "https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-mqtt.html"
	awsDocShadowDocuments = "https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-document.html"
)

// Shadow limits the emulation enforces ("AWS IoT Device Shadow service limits").
const (
	ShadowMaxDocument    = 8 * 1024 // bytes of the request's JSON
	ShadowMaxDepth       = 6        // levels of nesting in desired and reported
	ShadowMaxClientToken = 64       // bytes
)

var (
	shadowTopic = regexp.MustCompile(`^\$aws/things/([a-zA-Z0-9:_-]{1,128})/shadow/(?:name/([a-zA-Z0-9:_-]{1,64})/)?(get|update|delete)$`)
)

// shadows holds every shadow document of the emulation.
type shadows struct {
	b    *Broker
	mu   sync.Mutex
	docs map[string]*shadowDoc // thing + "\x00" + name ("" for the classic shadow)
	now  func() time.Time
}

type shadowDoc struct {
	exists                bool
	desired, reported     map[string]any
	mdDesired, mdReported map[string]any
	version               int64
}

// shadowRequest is what a device publishes to get, update and delete.
type shadowRequest struct {
	State       json.RawMessage `json:"state"`
	ClientToken *string         `json:"clientToken"`
	Version     *int64          `json:"version"`
}

// start subscribes the service to the request topics.
func (s *shadows) start(srv *mqtt.Server) error {
	for i, f := range []string{"$aws/things/+/shadow/+", "$aws/things/+/shadow/name/+/+"} {
		if err := srv.Subscribe(f, 9000+i, s.handle); err != nil {
			return fmt.Errorf("broker: shadow service: %w", err)
		}
	}
	return nil
}

func (s *shadows) handle(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
	m := shadowTopic.FindStringSubmatch(pk.TopicName)
	if m == nil {
		return // an answer topic (accepted, rejected, delta, documents) or not a shadow's
	}
	thing, name, op := m[1], m[2], m[3]
	prefix := "$aws/things/" + thing + "/shadow/"
	if name != "" {
		prefix += "name/" + name + "/"
	}
	prefix += op
	for _, out := range s.serve(thing, name, op, pk.Payload) {
		if err := s.b.srv.Publish(prefix+out.suffix, out.payload, false, 1); err != nil {
			s.b.log.Warn("shadow answer not published", "topic", prefix+out.suffix, "error", err)
		}
	}
}

type shadowOut struct {
	suffix  string
	payload []byte
}

// serve answers one request; it returns what to publish, each topic relative to the request's.
func (s *shadows) serve(thing, name, op string, payload []byte) []shadowOut {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &shadowCall{s: s, thing: thing, name: name, op: op, ts: s.now().Unix()}
	if len(bytes.TrimSpace(payload)) > 0 || op == "update" {
		if len(payload) > ShadowMaxDocument {
			return c.reject(413, "The payload exceeds the maximum size allowed")
		}
		if err := json.Unmarshal(payload, &c.req); err != nil {
			return c.reject(400, "Invalid JSON")
		}
	}
	if c.req.ClientToken != nil && len(*c.req.ClientToken) > ShadowMaxClientToken {
		return c.reject(400, "Invalid clientToken: longer than 64 bytes")
	}
	key := thing + "\x00" + name
	d := s.docs[key]
	if d == nil {
		d = &shadowDoc{}
		s.docs[key] = d
	}
	missing := "No shadow exists with name: '" + thing + "'"
	if name != "" {
		missing = "No shadow exists with name: '" + name + "'"
	}
	switch op {
	case "get":
		if !d.exists {
			return c.reject(404, missing)
		}
		state := d.state()
		if delta := shadowDelta(d.desired, d.reported); len(delta) > 0 {
			state["delta"] = delta
		}
		return []shadowOut{{"/accepted", mustJSON(c.token(map[string]any{"state": state, "metadata": d.metadata(), "version": d.version, "timestamp": c.ts}))}}
	case "delete":
		if !d.exists {
			return c.reject(404, missing)
		}
		v := d.version
		// The version survives the deletion: a shadow made again goes on counting.
		*d = shadowDoc{version: v}
		return []shadowOut{{"/accepted", mustJSON(c.token(map[string]any{"version": v, "timestamp": c.ts}))}}
	}
	return c.update(d)
}

// shadowCall is one request to a shadow: what the answers need to name.
type shadowCall struct {
	s               *shadows
	thing, name, op string
	ts              int64
	req             shadowRequest
}

// token adds the request's client token to an answer.
func (c *shadowCall) token(v map[string]any) map[string]any {
	if c.req.ClientToken != nil {
		v["clientToken"] = *c.req.ClientToken
	}
	return v
}

// reject is the /rejected answer with an AWS error code and message.
func (c *shadowCall) reject(code int, msg string) []shadowOut {
	c.s.b.log.Info("shadow request rejected", "thing", c.thing, "shadow", c.name, "op", c.op, "code", code, "message", msg, "aws_doc", awsDocShadowTopics)
	return []shadowOut{{"/rejected", mustJSON(c.token(map[string]any{"code": code, "message": msg, "timestamp": c.ts}))}}
}

// update applies an update request to d: /accepted, /delta when desired and reported differ
// after a change of desired, and /documents with the previous and current documents.
func (c *shadowCall) update(d *shadowDoc) []shadowOut {
	sections, nulled, rejected := c.updateSections(d)
	if rejected != nil {
		return rejected
	}
	var previous map[string]any
	if d.exists {
		previous = map[string]any{"state": d.state(), "metadata": d.metadata(), "version": d.version}
	}
	md := d.apply(sections, nulled, c.ts)
	d.exists = true
	d.version++
	var reqState map[string]any
	json.Unmarshal(c.req.State, &reqState)
	out := []shadowOut{{"/accepted", mustJSON(c.token(map[string]any{"state": reqState, "metadata": md, "version": d.version, "timestamp": c.ts}))}}
	if sections[0] != nil {
		if delta := shadowDelta(d.desired, d.reported); len(delta) > 0 {
			out = append(out, shadowOut{"/delta", mustJSON(c.token(map[string]any{"state": delta, "metadata": pick(d.mdDesired, delta), "version": d.version, "timestamp": c.ts}))})
		}
	}
	docs := map[string]any{"current": map[string]any{"state": d.state(), "metadata": d.metadata(), "version": d.version}, "timestamp": c.ts}
	if previous != nil {
		docs["previous"] = previous
	}
	return append(out, shadowOut{"/documents", mustJSON(c.token(docs))})
}

// updateSections checks an update's state node and returns its desired and reported sections
// (index 0 and 1) and which of them it sets to null; rejected is the answer to an invalid one.
func (c *shadowCall) updateSections(d *shadowDoc) (sections [2]map[string]any, nulled [2]bool, rejected []shadowOut) {
	if c.req.State == nil || string(c.req.State) == "null" {
		return sections, nulled, c.reject(400, "Missing required node: state")
	}
	var state map[string]json.RawMessage
	if err := json.Unmarshal(c.req.State, &state); err != nil {
		return sections, nulled, c.reject(400, "State node must be an object")
	}
	if c.req.Version != nil && d.exists && *c.req.Version != d.version {
		return sections, nulled, c.reject(409, "Version conflict")
	}
	for k, raw := range state {
		i := map[string]int{"desired": 0, "reported": 1}[k]
		if k != "desired" && k != "reported" {
			return sections, nulled, c.reject(400, "State contains an invalid node: '"+k+"'")
		}
		if string(raw) == "null" {
			nulled[i] = true
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal(raw, &obj); err != nil {
			return sections, nulled, c.reject(400, "Invalid JSON: "+k+" must be an object")
		}
		if depth(obj) > ShadowMaxDepth {
			return sections, nulled, c.reject(400, "JSON contains too many levels of nesting; maximum is 6")
		}
		sections[i] = obj
	}
	return sections, nulled, nil
}

// apply merges an update's sections into d (a null section clears it) and returns the
// metadata of what the update set.
func (d *shadowDoc) apply(sections [2]map[string]any, nulled [2]bool, ts int64) map[string]any {
	md := map[string]any{}
	for i, sec := range []*map[string]any{&d.desired, &d.reported} {
		mdSec := []*map[string]any{&d.mdDesired, &d.mdReported}[i]
		label := []string{"desired", "reported"}[i]
		switch {
		case nulled[i]:
			*sec, *mdSec = nil, nil
		case sections[i] != nil:
			if *sec == nil {
				*sec, *mdSec = map[string]any{}, map[string]any{}
			}
			merge(*sec, *mdSec, sections[i], ts)
			md[label] = metadataOf(sections[i], ts)
			if len(*sec) == 0 {
				*sec, *mdSec = nil, nil
			}
		}
	}
	return md
}

func (d *shadowDoc) state() map[string]any {
	st := map[string]any{}
	if d.desired != nil {
		st["desired"] = d.desired
	}
	if d.reported != nil {
		st["reported"] = d.reported
	}
	return st
}

func (d *shadowDoc) metadata() map[string]any {
	md := map[string]any{}
	if d.mdDesired != nil {
		md["desired"] = d.mdDesired
	}
	if d.mdReported != nil {
		md["reported"] = d.mdReported
	}
	return md
}

// merge applies an update section to a document section: null deletes a key, objects merge
// key by key, anything else (arrays included) replaces the value.
func merge(dst, md, src map[string]any, ts int64) {
	for k, v := range src {
		switch v := v.(type) {
		case nil:
			delete(dst, k)
			delete(md, k)
		case map[string]any:
			sub, ok := dst[k].(map[string]any)
			subMD, _ := md[k].(map[string]any)
			if !ok {
				sub, subMD = map[string]any{}, map[string]any{}
			} else if subMD == nil {
				subMD = map[string]any{}
			}
			merge(sub, subMD, v, ts)
			if len(sub) == 0 {
				delete(dst, k)
				delete(md, k)
				continue
			}
			dst[k], md[k] = sub, subMD
		default:
			dst[k] = v
			md[k] = map[string]any{"timestamp": ts}
		}
	}
}

// metadataOf mirrors an update section with a timestamp per leaf (nulls included: they were
// updated too).
func metadataOf(src map[string]any, ts int64) map[string]any {
	md := map[string]any{}
	for k, v := range src {
		if obj, ok := v.(map[string]any); ok {
			md[k] = metadataOf(obj, ts)
		} else {
			md[k] = map[string]any{"timestamp": ts}
		}
	}
	return md
}

// shadowDelta is every desired value that reported lacks or holds differently, recursively for
// objects.
func shadowDelta(desired, reported map[string]any) map[string]any {
	delta := map[string]any{}
	for k, dv := range desired {
		rv, ok := reported[k]
		dObj, dIsObj := dv.(map[string]any)
		rObj, rIsObj := rv.(map[string]any)
		switch {
		case !ok:
			delta[k] = dv
		case dIsObj && rIsObj:
			if sub := shadowDelta(dObj, rObj); len(sub) > 0 {
				delta[k] = sub
			}
		case !reflect.DeepEqual(dv, rv):
			delta[k] = dv
		}
	}
	return delta
}

// pick returns the metadata of the keys of delta.
func pick(md, delta map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range delta {
		if obj, ok := v.(map[string]any); ok {
			sub, _ := md[k].(map[string]any)
			out[k] = pick(sub, obj)
		} else if m, ok := md[k]; ok {
			out[k] = m
		}
	}
	return out
}

func depth(v any) int {
	obj, ok := v.(map[string]any)
	if !ok {
		return 0
	}
	n := 0
	for _, c := range obj {
		n = max(n, depth(c))
	}
	return n + 1
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
