package fennec_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
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
// flight by default (it kept 1,000, which mosquitto 2.0.11 refused and disconnected for; 100
// fared no better, TestDefaultWindow311Mosquitto).
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
	half := fennec.DefaultMaxInflight311 / 2
	for _, id := range ids[:half] {
		fc.write(&packet.Pubrec{PacketID: id})
	}
	for range half {
		fc.readType(packet.PUBREL)
	}
}

// TestDefaultWindow311Mosquitto: against a stock mosquitto (max_inflight_messages 20), a 3.1.1
// client with the default window publishes 2,000 QoS 2 messages without a connection loss and
// every one arrives. With a window of 100 mosquitto answers some messages with a PUBREC it does
// not honour and drops the connection, again and again; whatever Publish then reports as sent
// must have arrived. The old client reported messages as sent that never did (45–91 of 5,000
// "sent", 0 received).
func TestDefaultWindow311Mosquitto(t *testing.T) {
	b := startMosquitto(t, "max_queued_messages 0")
	for _, window := range []int{0, 100} {
		t.Run(fmt.Sprintf("window=%d", window), func(t *testing.T) {
			leakCheck(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			topic := fmt.Sprintf("w311/%d", window)
			var mu sync.Mutex
			got := map[string]bool{}
			s := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, Version: packet.V311, CleanStart: true})
			if _, err := s.Subscribe(ctx, func(m *fennec.Message) {
				mu.Lock()
				got[string(m.Payload)] = true
				mu.Unlock()
			}, sub(topic, 2)); err != nil {
				t.Fatal(err)
			}
			var lost atomic.Int64
			p := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, Version: packet.V311, CleanStart: true, MaxInflight: window,
				Backoff:          func(int) time.Duration { return 20 * time.Millisecond },
				OnConnectionLost: func(*fennec.Client, error) { lost.Add(1) }})
			const n = 2000
			toks := make([]*fennec.Token, n)
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
			defer wcancel()
			for i := range toks {
				toks[i] = p.PublishAsync(wctx, &fennec.Message{Topic: topic, QoS: 2, Payload: []byte(fmt.Sprint(i))})
			}
			var sent []int
			for i, tok := range toks {
				if tok.Wait(wctx) == nil {
					sent = append(sent, i)
				}
			}
			p.Close()
			time.Sleep(200 * time.Millisecond) // the last PUBRELs reach the subscriber
			mu.Lock()
			defer mu.Unlock()
			falseSuccess := 0
			for _, i := range sent {
				if !got[fmt.Sprint(i)] {
					falseSuccess++
				}
			}
			t.Logf("window %d: %d of %d reported sent, %d received, %d reported sent but never received, %d connection losses",
				window, len(sent), n, len(got), falseSuccess, lost.Load())
			if falseSuccess > 0 {
				t.Fatalf("%d messages reported sent never arrived", falseSuccess)
			}
			if window == 0 && (len(sent) != n || lost.Load() != 0) {
				t.Fatalf("default window: %d of %d sent, %d connection losses; want all, none", len(sent), n, lost.Load())
			}
		})
	}
}
