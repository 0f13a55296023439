package broker

import (
	"encoding/json"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"
)

func newShadows() *shadows {
	b := &Broker{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return &shadows{b: b, docs: map[string]*shadowDoc{}, now: func() time.Time { return time.Unix(1700000000, 0) }}
}

// answer runs one request and returns the topics answered and the last payload decoded.
func answer(t *testing.T, s *shadows, op, name, payload string) (suffixes []string, last map[string]any) {
	t.Helper()
	for _, o := range s.serve("dev1", name, op, []byte(payload)) {
		suffixes = append(suffixes, o.suffix)
		last = map[string]any{}
		if err := json.Unmarshal(o.payload, &last); err != nil {
			t.Fatal(err)
		}
	}
	return suffixes, last
}

// The document rules of the Device Shadow service: merges, null deletes, arrays replace,
// versions, the delta, and the rejections with AWS's codes.
func TestShadowDocumentRules(t *testing.T) {
	s := newShadows()
	suf, _ := answer(t, s, "update", "", `{"state":{"desired":{"a":1,"arr":[1,2],"o":{"x":1,"y":2}}},"clientToken":"t1"}`)
	if !reflect.DeepEqual(suf, []string{"/accepted", "/delta", "/documents"}) {
		t.Fatalf("first update answered on %v", suf)
	}
	answer(t, s, "update", "", `{"state":{"desired":{"arr":[3],"o":{"y":null}},"reported":{"a":1}}}`)
	_, doc := answer(t, s, "get", "", `{"clientToken":"g"}`)
	st := doc["state"].(map[string]any)
	wantDesired := map[string]any{"a": 1.0, "arr": []any{3.0}, "o": map[string]any{"x": 1.0}}
	if !reflect.DeepEqual(st["desired"], wantDesired) || doc["version"] != 2.0 || doc["clientToken"] != "g" {
		t.Fatalf("get: %v", doc)
	}
	if !reflect.DeepEqual(st["delta"], map[string]any{"arr": []any{3.0}, "o": map[string]any{"x": 1.0}}) {
		t.Fatalf("delta %v", st["delta"])
	}
	md := doc["metadata"].(map[string]any)["desired"].(map[string]any)
	if md["a"].(map[string]any)["timestamp"] != 1700000000.0 || md["o"].(map[string]any)["y"] != nil {
		t.Fatalf("metadata %v", md)
	}
	// The whole reported section set to null goes away.
	answer(t, s, "update", "", `{"state":{"reported":null}}`)
	if _, doc = answer(t, s, "get", "", ``); doc["state"].(map[string]any)["reported"] != nil || doc["version"] != 3.0 {
		t.Fatalf("reported null: %v", doc)
	}
	for _, c := range []struct {
		payload string
		code    float64
	}{
		{`not json`, 400},
		{`{"clientToken":"x"}`, 400},
		{`{"state":{"wanted":{}}}`, 400},
		{`{"state":{"desired":{"a":1}},"version":1}`, 409},
		{`{"state":{"desired":{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}}}`, 400},
		{`{"state":{"desired":{"a":"` + string(make([]byte, 9000)) + `"}}}`, 413},
		{`{"state":{"desired":{}},"clientToken":"` + string(make([]byte, 65)) + `"}`, 400},
	} {
		suf, doc := answer(t, s, "update", "", c.payload)
		if len(suf) != 1 || suf[0] != "/rejected" || doc["code"] != c.code || doc["message"] == "" {
			t.Errorf("%.60s: %v %v", c.payload, suf, doc)
		}
	}
	if _, doc = answer(t, s, "get", "", ``); doc["version"] != 3.0 {
		t.Fatalf("a rejected update changed the version: %v", doc)
	}
	if suf, doc = answer(t, s, "get", "other", ``); suf[0] != "/rejected" || doc["code"] != 404.0 {
		t.Fatalf("named shadow that does not exist: %v %v", suf, doc)
	}
	if suf, doc = answer(t, s, "delete", "", `{"clientToken":"d"}`); suf[0] != "/accepted" || doc["version"] != 3.0 || doc["clientToken"] != "d" {
		t.Fatalf("delete: %v %v", suf, doc)
	}
	if suf, _ = answer(t, s, "delete", "", ``); suf[0] != "/rejected" {
		t.Fatal("second delete accepted")
	}
}
