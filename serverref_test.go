package fennec_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
)

// Server Reference: a CONNACK 0x9D (Server moved) and a DISCONNECT 0x9C (Use another server)
// that name the embedded broker send a client with FollowServerReference there, session and
// all; without the option the reference is in the error and the client stays.
func TestServerReference(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	watcher, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	got := make(chan string, 4)
	if _, err := watcher.Subscribe(ctx, func(m *fennec.Message) { got <- string(m.Payload) }, packet.Subscription{Filter: "moved/#", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	arrives := func(want string) {
		t.Helper()
		select {
		case p := <-got:
			if p != want {
				t.Fatalf("got %q, want %q", p, want)
			}
		case <-ctx.Done():
			t.Fatalf("%q did not reach the referenced broker", want)
		}
	}
	refer := func() func(*packet.Properties) {
		return func(p *packet.Properties) { p.ServerReference = b.TCPAddr; p.Set(packet.PropServerReference) }
	}

	// CONNACK 0x9D at Connect
	fb := startFake(t, packet.V5)
	res := make(chan error, 1)
	var c *fennec.Client
	go func() {
		var err error
		c, err = fennec.Connect(ctx, fennec.Config{Server: fb.url(), ClientID: "mover", FollowServerReference: true})
		res <- err
	}()
	fc := fb.next(t)
	fc.read()
	ack := &packet.Connack{ReasonCode: 0x9D}
	refer()(&ack.Props)
	fc.write(ack)
	if err := <-res; err != nil {
		t.Fatalf("Connect after CONNACK 0x9D: %v", err)
	}
	if err := c.Publish(ctx, &fennec.Message{Topic: "moved/a", QoS: 1, Payload: []byte("after CONNACK 0x9D")}); err != nil {
		t.Fatal(err)
	}
	arrives("after CONNACK 0x9D")
	c.Close()

	// DISCONNECT 0x9C on an established connection
	fb2 := startFake(t, packet.V5)
	cfg := fastReconnect(fb2.url(), packet.V5)
	cfg.FollowServerReference = true
	c2, fc2 := connectFake(t, fb2, cfg, false)
	d := &packet.Disconnect{ReasonCode: 0x9C}
	refer()(&d.Props)
	fc2.write(d)
	if err := c2.Publish(ctx, &fennec.Message{Topic: "moved/b", QoS: 1, Payload: []byte("after DISCONNECT 0x9C")}); err != nil {
		t.Fatal(err)
	}
	arrives("after DISCONNECT 0x9C")

	// without the option: reported, not followed
	fb3 := startFake(t, packet.V5)
	go func() {
		fc := fb3.next(t)
		fc.read()
		ack := &packet.Connack{ReasonCode: 0x9D}
		refer()(&ack.Props)
		fc.write(ack)
	}()
	_, err = fennec.Connect(ctx, fennec.Config{Server: fb3.url(), DisableReconnect: true})
	var re *fennec.ReasonError
	if !errors.As(err, &re) || re.ServerReference != b.TCPAddr || !strings.Contains(err.Error(), "server reference") {
		t.Fatalf("without FollowServerReference: %v", err)
	}
}
