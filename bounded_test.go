package fennec_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// TestSlowConsumerBackPressure: while a handler is stuck, the client stops reading once its
// bounded dispatch queue is full, so the broker's writes block (TCP back-pressure) instead of
// the client's memory growing; when the handler resumes everything arrives in order.
func TestSlowConsumerBackPressure(t *testing.T) {
	leakCheck(t)
	fb := startFake(t, packet.V5)
	release := make(chan struct{})
	var received atomic.Int64
	got := make(chan int, 10000)
	cfg := fastReconnect(fb.url(), packet.V5)
	cfg.Trace = func(e fennec.TraceEvent) {
		if p, ok := e.Packet.(*packet.Publish); ok && !e.Outbound {
			received.Add(1)
			_ = p
		}
	}
	first := true
	cfg.DefaultHandler = func(m *fennec.Message) {
		if first {
			first = false
			<-release
		}
		var i int
		fmt.Sscan(string(m.Payload), &i)
		got <- i
	}
	_, fc := connectFake(t, fb, cfg, false)
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	const total = 30000
	payload := make([]byte, 1000)
	written := make(chan int, 1)
	go func() {
		n := 0
		defer func() { written <- n }()
		for ; n < total; n++ {
			p := &packet.Publish{Topic: "flood", Payload: append([]byte(fmt.Sprint(n)+" "), payload...)}
			b, _ := p.Append(nil, packet.V5)
			fc.nc.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
			if _, err := fc.nc.Write(b); err != nil {
				return // blocked: the client stopped reading
			}
		}
	}()
	n := <-written
	if n == total {
		t.Fatalf("the broker wrote all %d messages (30 MB) while the handler was stuck: no back-pressure", total)
	}
	if r := received.Load(); r > 1024+2 {
		t.Fatalf("client read %d messages while its handler was stuck; the queue bound is 1024", r)
	}
	close(release)
	released = true
	fc.nc.SetWriteDeadline(time.Time{})
	go func() {
		for i := n + 1; i < total; i++ { // the message cut by the deadline may be partial: skip on
			p := &packet.Publish{Topic: "flood", Payload: []byte(fmt.Sprint(i))}
			b, _ := p.Append(nil, packet.V5)
			if _, err := fc.nc.Write(b); err != nil {
				return
			}
		}
	}()
	// Everything read before the stall arrives in order.
	for i := 0; i < int(received.Load()) && i < n; i++ {
		select {
		case v := <-got:
			if v != i {
				t.Fatalf("message %d arrived as %d", i, v)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d did not arrive", i)
		}
	}
}

// TestStalledBroker: a broker that stops reading makes Publish wait (ctx-aware, the queue is
// bounded), then fails the connection with ErrWriteTimeout; offline, Publish reports
// ErrQueueFull rather than queueing without bound. Virtual time (synctest) over net.Pipe, whose
// writes block until the peer reads — exactly a broker that stopped reading.
func TestStalledBroker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, cli := net.Pipe()
		lost := make(chan error, 1)
		cfg := fennec.Config{Server: "mqtt://broker.test", KeepAlive: 10 * time.Second,
			MaxOfflineQueue: 50, DisableReconnect: false,
			Backoff: func(int) time.Duration { return time.Hour },
			Dial:    func(context.Context, string, string) (net.Conn, error) { return cli, nil },
			OnConnectionLost: func(_ *fennec.Client, err error) {
				select {
				case lost <- err:
				default:
				}
			}}
		fc := &fakeConn{t: t, nc: srv, rd: packet.NewReader(srv, 0), v: packet.V5}
		done := make(chan *fennec.Client)
		go func() {
			c, err := fennec.Connect(context.Background(), cfg)
			if err != nil {
				t.Error(err)
			}
			done <- c
		}()
		fc.accept(false)
		c := <-done
		// The broker reads nothing more but keeps sending, so only the write side stalls.
		stopTalking := make(chan struct{})
		go func() {
			b, _ := (&packet.Publish{Topic: "alive"}).Append(nil, packet.V5)
			for {
				select {
				case <-stopTalking:
					return
				case <-time.After(2 * time.Second):
				}
				if _, err := srv.Write(b); err != nil {
					return
				}
			}
		}()
		defer close(stopTalking)
		// Publish QoS 1 until one has to wait.
		for i := 0; ; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := c.Publish(ctx, &fennec.Message{Topic: "t", QoS: 1, Payload: make([]byte, 100)})
			cancel()
			if errors.Is(err, context.DeadlineExceeded) && i > 0 {
				break // accepted and waiting, or waiting for queue space: both bounded
			}
			if i > 2000 {
				t.Fatal("Publish never waited: unbounded queue")
			}
		}
		if pending := c.Pending(); pending > 1000+50 {
			t.Fatalf("%d messages pending, more than window + queue", pending)
		}
		err := <-lost
		if !errors.Is(err, fennec.ErrWriteTimeout) {
			t.Fatalf("connection lost with %v, want ErrWriteTimeout", err)
		}
		// Offline now (backoff one hour): the bounded queue fills, then Publish fails at once.
		full := false
		for i := 0; i < 51; i++ {
			if err := c.PublishAsync(context.Background(), &fennec.Message{Topic: "t", QoS: 1}).Err(); errors.Is(err, fennec.ErrQueueFull) {
				full = true
				break
			}
		}
		if !full {
			t.Fatal("offline Publish never reported ErrQueueFull with MaxOfflineQueue 50")
		}
		if err := c.Close(); !errors.Is(err, fennec.ErrUnacknowledged) {
			t.Fatalf("Close: %v, want ErrUnacknowledged", err)
		}
		srv.Close()
	})
}

// TestPublishAsyncWaitBoundedByContext: PublishAsync waits for queue space while connected, but
// only within its ctx: with the window and the queue full (the broker acknowledges nothing),
// the token fails with ctx's error and the message is not queued. The old PublishAsync had no
// ctx and waited for good.
func TestPublishAsyncWaitBoundedByContext(t *testing.T) {
	for _, v := range versions {
		t.Run(vname(v), func(t *testing.T) {
			leakCheck(t)
			fb := startFake(t, v)
			cfg := fastReconnect(fb.url(), v)
			cfg.MaxInflight, cfg.MaxOfflineQueue = 1, 1
			c, fc := connectFake(t, fb, cfg, false)
			first := c.PublishAsync(context.Background(), &fennec.Message{Topic: "t", QoS: 1})
			fc.readType(packet.PUBLISH)
			second := c.PublishAsync(context.Background(), &fennec.Message{Topic: "t", QoS: 1})
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			third := c.PublishAsync(ctx, &fennec.Message{Topic: "t", QoS: 1})
			select {
			case <-third.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("PublishAsync did not give up when its ctx ended")
			}
			if err := third.Err(); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("third: %v, want context.DeadlineExceeded", err)
			}
			if d := time.Since(start); d < 90*time.Millisecond {
				t.Fatalf("gave up after %v, before its ctx ended", d)
			}
			if n := c.Pending(); n != 2 {
				t.Fatalf("Pending = %d, want 2: the refused message must not be queued", n)
			}
			c.Close()
			for _, tok := range []*fennec.Token{first, second} {
				if err := tok.Wait(testCtx(t)); !errors.Is(err, fennec.ErrClosed) {
					t.Fatalf("after Close: %v, want ErrClosed", err)
				}
			}
		})
	}
}
