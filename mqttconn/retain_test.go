package mqttconn_test

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/fennec-mqtt/fennec/mqttconn"
	"github.com/fennec-mqtt/fennec/packet"
)

// TestConnKeepsNoOptions: an established connection keeps neither the Options it was dialled
// with nor their CONNECT (password, properties); what it uses after the handshake (the hooks)
// it copies. A gateway holds thousands of idle connections: each copy would cost every one.
func TestConnKeepsNoOptions(t *testing.T) {
	srv, cli := net.Pipe()
	defer srv.Close()
	release := make(chan struct{})
	go func() {
		rd := packet.NewReader(srv, 0)
		if _, err := rd.ReadPacket(packet.V5); err != nil {
			t.Error(err)
			return
		}
		b, _ := (&packet.Connack{}).Append(nil, packet.V5)
		srv.Write(b)
		<-release
		b, _ = (&packet.Publish{Topic: "after/gc", Payload: []byte("x")}).Append(nil, packet.V5)
		srv.Write(b)
		for {
			if _, err := rd.ReadPacket(packet.V5); err != nil {
				return
			}
		}
	}()
	got := make(chan packet.Packet, 1)
	o := &mqttconn.Options{Addr: "x:1", Scheme: "mqtt",
		Dial:     func(context.Context, string, string) (net.Conn, error) { return cli, nil },
		Connect:  packet.Connect{ClientID: "k", CleanStart: true, Password: make([]byte, 4096), HasPassword: true},
		OnPacket: func(_ *mqttconn.Conn, p packet.Packet) { got <- p }}
	wo, wp := weak.Make(o), weak.Make(&o.Connect.Password[0])
	c, _, err := mqttconn.Dial(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(nil)
	o = nil
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	if wo.Value() != nil {
		t.Error("the connection keeps the Options it was dialled with")
	}
	if wp.Value() != nil {
		t.Error("the connection keeps the CONNECT's password")
	}
	// What it needs it kept: OnPacket still receives.
	go c.Run()
	close(release)
	select {
	case p := <-got:
		if pub, ok := p.(*packet.Publish); !ok || pub.Topic != "after/gc" {
			t.Fatalf("OnPacket got %v, want the PUBLISH to after/gc", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnPacket received nothing after the options were collected")
	}
}
