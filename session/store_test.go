package session_test

import (
	"testing"

	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/session"
	"github.com/fennec-mqtt/fennec/session/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func() session.Store { return session.NewMemoryStore() })
}

func TestIDs(t *testing.T) {
	var ids session.IDs
	seen := map[uint16]bool{}
	for i := 0; i < 65535; i++ {
		id, ok := ids.Take()
		if !ok || id == 0 || seen[id] {
			t.Fatalf("Take %d: id %d ok %v", i, id, ok)
		}
		seen[id] = true
	}
	if _, ok := ids.Take(); ok {
		t.Fatal("Take succeeded with all identifiers in use")
	}
	ids.Free(500)
	if id, ok := ids.Take(); !ok || id != 500 {
		t.Fatalf("after Free(500): %d %v", id, ok)
	}
	if ids.Len() != 65535 {
		t.Fatalf("Len %d", ids.Len())
	}
}

func TestMarshalPublish(t *testing.T) {
	p := &packet.Publish{QoS: 2, Retain: true, Topic: "a/b", PacketID: 9, Payload: []byte("hello")}
	p.Props.SetContentType("text/plain")
	p.Props.AddUserProperty("k", "v")
	b, err := session.MarshalPublish(p)
	must(t, err)
	q, err := session.UnmarshalPublish(b)
	must(t, err)
	if q.Topic != p.Topic || q.QoS != 2 || !q.Retain || q.PacketID != 9 || string(q.Payload) != "hello" ||
		q.Props.ContentType != "text/plain" || len(q.Props.UserProperties) != 1 {
		t.Fatalf("round trip: %+v", q)
	}
	if _, err := session.UnmarshalPublish(b[:len(b)-1]); err == nil {
		t.Fatal("truncated record decoded")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
