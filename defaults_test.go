package fennec_test

import (
	"context"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/session"
)

// TestGeneratedIDCleanSession: without a ClientID the client makes one up and asks for a clean
// session that ends with the connection — nobody could resume it. A zero Config on 3.1.1 used to
// send CleanSession 0 with a random ID, and MQTT 5 with a Session Expiry did the same, leaving
// the broker a session nobody can resume.
func TestGeneratedIDCleanSession(t *testing.T) {
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(vname(v), func(t *testing.T) {
			leakCheck(t)
			fb := startFake(t, v)
			cfg := fennec.Config{Server: fb.url(), Version: v, SessionExpiry: time.Hour}
			res := make(chan error, 1)
			var c *fennec.Client
			go func() {
				var err error
				c, err = fennec.Connect(context.Background(), cfg)
				res <- err
			}()
			fc := fb.next(t)
			conn := fc.accept(false)
			if err := <-res; err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if conn.ClientID == "" || !conn.CleanStart {
				t.Fatalf("CONNECT client ID %q clean %v, want a generated ID and a clean session", conn.ClientID, conn.CleanStart)
			}
			if v == packet.V5 && conn.Props.Has(packet.PropSessionExpiry) && conn.Props.SessionExpiryInterval != 0 {
				t.Fatalf("Session Expiry %d for a generated ID", conn.Props.SessionExpiryInterval)
			}
		})
	}
	_, err := fennec.Connect(context.Background(), fennec.Config{Server: "mqtt://127.0.0.1:1", Store: session.NewMemoryStore()})
	if err == nil {
		t.Fatal("a Store without a ClientID was accepted")
	}
}

// TestDefaultWindow311: a 3.1.1 client keeps at most DefaultMaxInflight311 QoS 1/2 messages in
// flight by default (it kept 1,000, which mosquitto 2.0.11 refused and disconnected for).
func TestDefaultWindow311(t *testing.T) {
	leakCheck(t)
	fb := startFake(t, packet.V311)
	cfg := fastReconnect(fb.url(), packet.V311)
	c, fc := connectFake(t, fb, cfg, false)
	for i := 0; i < fennec.DefaultMaxInflight311+20; i++ {
		c.PublishAsync(context.Background(), &fennec.Message{Topic: "w", QoS: 2})
	}
	var ids []uint16
	for range fennec.DefaultMaxInflight311 {
		ids = append(ids, fc.readType(packet.PUBLISH).(*packet.Publish).PacketID)
	}
	fc.nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if p, err := fc.rd.ReadPacket(packet.V311); err == nil {
		t.Fatalf("a %v beyond the default window of %d", p.Type(), fennec.DefaultMaxInflight311)
	}
	// Acknowledgements open the window again.
	for _, id := range ids[:50] {
		fc.write(&packet.Pubrec{PacketID: id})
	}
	for range 50 {
		fc.readType(packet.PUBREL)
	}
}
