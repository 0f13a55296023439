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

// TestDefaultWindow311: a 3.1.1 client keeps at most DefaultMaxInflight311 QoS 2 messages in
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

// TestDefaultWindow311QoS1: the 3.1.1 QoS 2 window does not hold QoS 1 back. A default 3.1.1
// client keeps 200 QoS 1 messages in flight (it kept 20, which bounded QoS 1 throughput to 20
// messages per round trip), and a QoS 1 message published after 20 unfinished QoS 2 ones waits
// behind them: order is kept.
func TestDefaultWindow311QoS1(t *testing.T) {
	leakCheck(t)
	fb := startFake(t, packet.V311)
	cfg := fastReconnect(fb.url(), packet.V311)
	c, fc := connectFake(t, fb, cfg, false)
	const n = 200
	for range n {
		c.PublishAsync(context.Background(), &fennec.Message{Topic: "w", QoS: 1})
	}
	for i := range n {
		if p := fc.readType(packet.PUBLISH).(*packet.Publish); p.QoS != 1 {
			t.Fatalf("PUBLISH %d: QoS %d", i, p.QoS)
		}
	}
	// 20 QoS 2 messages fill the QoS 2 window; the QoS 1 message after them waits.
	for range fennec.DefaultMaxInflight311 + 1 {
		c.PublishAsync(context.Background(), &fennec.Message{Topic: "w", QoS: 2})
	}
	c.PublishAsync(context.Background(), &fennec.Message{Topic: "after", QoS: 1})
	var ids []uint16
	for range fennec.DefaultMaxInflight311 {
		p := fc.readType(packet.PUBLISH).(*packet.Publish)
		if p.QoS != 2 {
			t.Fatalf("QoS %d PUBLISH inside the QoS 2 run", p.QoS)
		}
		ids = append(ids, p.PacketID)
	}
	fc.nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if p, err := fc.rd.ReadPacket(packet.V311); err == nil {
		t.Fatalf("a %v beyond the QoS 2 window of %d", p.Type(), fennec.DefaultMaxInflight311)
	}
	fc.nc.SetReadDeadline(time.Time{})
	// One QoS 2 exchange finishes: the 21st QoS 2 message goes, then the QoS 1 one.
	fc.write(&packet.Pubrec{PacketID: ids[0]})
	fc.readType(packet.PUBREL)
	fc.write(&packet.Pubcomp{PacketID: ids[0]})
	if p := fc.readType(packet.PUBLISH).(*packet.Publish); p.QoS != 2 {
		t.Fatalf("after PUBCOMP: QoS %d, want the waiting QoS 2 message", p.QoS)
	}
	if p := fc.readType(packet.PUBLISH).(*packet.Publish); p.Topic != "after" {
		t.Fatalf("then %q, want the QoS 1 message published after the QoS 2 run", p.Topic)
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
			// MaxInflightQoS2 too: since QoS 2 has a window of its own, MaxInflight alone no
			// longer lets 100 QoS 2 messages fly.
			p := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, Version: packet.V311, CleanStart: true, MaxInflight: window, MaxInflightQoS2: uint16(window),
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

// TestDefaultWindow311MosquittoQoS1: a default 3.1.1 client against a stock mosquitto
// (max_inflight_messages 20) keeps up to 1,000 QoS 1 messages in flight: all 5,000 arrive,
// none is lost or reported sent without arriving, no connection is dropped, and the window is
// used beyond 20 (counted from the client's trace: PUBLISH written, PUBACK read).
func TestDefaultWindow311MosquittoQoS1(t *testing.T) {
	b := startMosquitto(t, "max_queued_messages 0")
	leakCheck(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	got := map[string]bool{}
	s := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, Version: packet.V311, CleanStart: true})
	if _, err := s.Subscribe(ctx, func(m *fennec.Message) {
		mu.Lock()
		got[string(m.Payload)] = true
		mu.Unlock()
	}, sub("w311q1", 1)); err != nil {
		t.Fatal(err)
	}
	var lost atomic.Int64
	var open, maxOpen int
	p := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, Version: packet.V311, CleanStart: true,
		OnConnectionLost: func(*fennec.Client, error) { lost.Add(1) },
		Trace: func(e fennec.TraceEvent) {
			mu.Lock()
			defer mu.Unlock()
			switch e.Packet.(type) {
			case *packet.Publish:
				if e.Outbound {
					open++
					maxOpen = max(maxOpen, open)
				}
			case *packet.Puback:
				if !e.Outbound {
					open--
				}
			}
		}})
	const n = 5000
	toks := make([]*fennec.Token, n)
	for i := range toks {
		toks[i] = p.PublishAsync(ctx, &fennec.Message{Topic: "w311q1", QoS: 1, Payload: []byte(fmt.Sprint(i))})
	}
	for i, tok := range toks {
		if err := tok.Wait(ctx); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		k := len(got)
		mu.Unlock()
		if k == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d received", k, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if l := lost.Load(); l != 0 {
		t.Fatalf("%d connections lost", l)
	}
	mu.Lock()
	defer mu.Unlock()
	if maxOpen <= fennec.DefaultMaxInflight311 {
		t.Fatalf("at most %d QoS 1 messages in flight: held to the QoS 2 window", maxOpen)
	}
	t.Logf("up to %d QoS 1 messages in flight", maxOpen)
}
