package fennec_test

import (
	"bytes"
	"testing"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// TestConnectBuiltPerAttempt: the client keeps no CONNECT packet between connections (an
// idle connection would hold it and its properties twice); it builds one from the Config for
// each attempt, so a reconnect sends the same CONNECT properties and credentials as the
// first connection.
func TestConnectBuiltPerAttempt(t *testing.T) {
	fb := startFake(t, packet.V5)
	cfg := fastReconnect(fb.url(), packet.V5)
	cfg.Username, cfg.Password = "u", []byte("secret")
	cfg.ConnectProperties = &packet.Properties{}
	cfg.ConnectProperties.AddUserProperty("site", "north")
	cfg.ConnectProperties.SetRequestProblemInformation(0)
	first := make(chan *packet.Connect, 1)
	var fc *fakeConn
	go func() { fc = fb.next(t); first <- fc.accept(false) }()
	c, err := fennec.Connect(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conns := []*packet.Connect{<-first}
	fc.nc.Close() // the broker drops the first connection: the client reconnects
	conns = append(conns, fb.next(t).accept(true))
	for i, c := range conns {
		if c.Username != "u" || !bytes.Equal(c.Password, []byte("secret")) {
			t.Errorf("CONNECT %d: credentials %q/%q", i+1, c.Username, c.Password)
		}
		if len(c.Props.UserProperties) != 1 || c.Props.UserProperties[0] != (packet.UserProperty{Key: "site", Value: "north"}) {
			t.Errorf("CONNECT %d: user properties %v, want site=north", i+1, c.Props.UserProperties)
		}
		if !c.Props.Has(packet.PropRequestProblemInformation) || c.Props.RequestProblemInformation != 0 {
			t.Errorf("CONNECT %d: Request Problem Information missing", i+1)
		}
	}
}

// TestConnectWithoutProperties: no ConnectProperties (nil) sends only what the Config's
// fields call for.
func TestConnectWithoutProperties(t *testing.T) {
	fb := startFake(t, packet.V5)
	cfg := fastReconnect(fb.url(), packet.V5)
	done := make(chan *packet.Connect, 1)
	go func() { done <- fb.next(t).accept(false) }()
	c, err := fennec.Connect(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := <-done
	if len(conn.Props.UserProperties) != 0 || conn.Props.Has(packet.PropRequestProblemInformation) ||
		conn.Props.Has(packet.PropAuthenticationMethod) {
		t.Errorf("CONNECT carries properties nobody set: %+v", conn.Props)
	}
}
