package fennec_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// cutProxy forwards TCP to a broker; cut drops every connection, and while paused new
// connections are refused (closed at once).
type cutProxy struct {
	addr   string
	mu     sync.Mutex
	conns  []net.Conn
	paused bool
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{addr: l.Addr().String()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			cc, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			paused := p.paused
			p.mu.Unlock()
			if paused {
				cc.Close()
				continue
			}
			bc, err := net.Dial("tcp", target)
			if err != nil {
				cc.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, cc, bc)
			p.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(bc, cc); bc.Close() }()
			go func() { defer wg.Done(); io.Copy(cc, bc); cc.Close() }()
		}
	}()
	t.Cleanup(func() { l.Close(); p.cut(); wg.Wait() })
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) pause(v bool) {
	p.mu.Lock()
	p.paused = v
	p.mu.Unlock()
}

// TestReconnectMosquitto: against a real mosquitto behind a proxy that drops connections:
// with a clean session the client resubscribes by itself; with a persistent session (no
// resubscribe needed) QoS 1 messages published while it was away arrive after reconnecting;
// callbacks report both transitions.
func TestReconnectMosquitto(t *testing.T) {
	b := startMosquitto(t)
	for _, v := range versions {
		for _, persistent := range []bool{false, true} {
			name := vname(v) + "/clean"
			if persistent {
				name = vname(v) + "/persistent"
			}
			t.Run(name, func(t *testing.T) {
				leakCheck(t)
				ctx := testCtx(t)
				proxy := startCutProxy(t, b.Addr)
				ups := make(chan *packet.Connack, 10)
				losts := make(chan error, 10)
				cfg := fennec.Config{Server: "mqtt://" + proxy.addr, Version: v, ClientID: "rc-" + t.Name(),
					CleanStart: !persistent, Backoff: func(int) time.Duration { return 20 * time.Millisecond },
					OnConnectionUp:   func(_ *fennec.Client, ack *packet.Connack) { ups <- ack },
					OnConnectionLost: func(_ *fennec.Client, err error) { losts <- err }}
				if persistent {
					cfg.SessionExpiry = time.Hour
				}
				c := connect(t, cfg)
				<-ups
				got := newCollector(10)
				topic := "rc/" + t.Name()
				if _, err := c.Subscribe(ctx, got.handler, sub(topic, 1)); err != nil {
					t.Fatal(err)
				}
				pub := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, Version: v})
				proxy.pause(true)
				proxy.cut()
				<-losts
				if persistent {
					// Offline: the broker queues for the persistent session.
					if err := pub.Publish(ctx, &fennec.Message{Topic: topic, QoS: 1, Payload: []byte("while away")}); err != nil {
						t.Fatal(err)
					}
				}
				proxy.pause(false)
				ack := <-ups
				if ack.SessionPresent != persistent {
					t.Fatalf("session present %v after reconnect", ack.SessionPresent)
				}
				if persistent {
					if m := got.next(t); string(m.Payload) != "while away" {
						t.Fatalf("got %q", m.Payload)
					}
				}
				// Resubscribed (clean) or still subscribed (persistent): new messages arrive.
				if err := waitPublishArrives(ctx, pub, got, topic); err != nil {
					t.Fatal(err)
				}
				if err := c.Disconnect(ctx); err != nil {
					t.Fatal(err)
				}
				pub.Disconnect(ctx)
			})
		}
	}
}

// waitPublishArrives publishes until one message arrives: the resubscribe after a reconnect
// races with the first publishes.
func waitPublishArrives(ctx context.Context, pub *fennec.Client, got collector, topic string) error {
	for {
		if err := pub.Publish(ctx, &fennec.Message{Topic: topic, QoS: 1, Payload: []byte("after")}); err != nil {
			return err
		}
		select {
		case m := <-got:
			if string(m.Payload) == "after" {
				return nil
			}
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// TestConnectRetry: with ConnectRetry, Connect returns while the broker is unreachable;
// messages published meanwhile are queued and delivered once it connects.
func TestConnectRetry(t *testing.T) {
	leakCheck(t)
	b := startMosquitto(t)
	ctx := testCtx(t)
	proxy := startCutProxy(t, b.Addr)
	proxy.pause(true)
	got := newCollector(10)
	sub := connect(t, fennec.Config{Server: "mqtt://" + b.Addr})
	if _, err := sub.Subscribe(ctx, got.handler, packet.Subscription{Filter: "retry/t", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	c, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + proxy.addr, ConnectRetry: true,
		Backoff: func(int) time.Duration { return 10 * time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.IsConnected() {
		t.Fatal("connected through a paused proxy")
	}
	tok := c.PublishAsync(context.Background(), &fennec.Message{Topic: "retry/t", QoS: 1, Payload: []byte("queued")})
	proxy.pause(false)
	if err := tok.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if m := got.next(t); string(m.Payload) != "queued" {
		t.Fatalf("got %q", m.Payload)
	}
	if err := c.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	sub.Disconnect(ctx)
}
