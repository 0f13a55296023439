package fennec_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// waitingHandler returns a handler that, for the message on topic "trigger", publishes a QoS 1
// reply and waits for its PUBACK, and counts every other message; replied is closed when the
// reply's Publish returned (with its error in *replyErr).
func waitingHandler(c **fennec.Client, count *atomic.Int64, replied chan struct{}, replyErr *error) fennec.MessageHandler {
	return func(m *fennec.Message) {
		if m.Topic != "trigger" {
			count.Add(1)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		*replyErr = (*c).Publish(ctx, &fennec.Message{Topic: "reply", QoS: 1, Payload: []byte("r")})
		close(replied)
	}
}

// TestQoS0FloodWhileHandlerWaits: a handler waits for its PUBACK while the broker sends a flood
// of QoS 0 messages ahead of it. Reading must go on (the PUBACK is behind the flood), and the
// flood must not pile up without bound: the handler queue keeps at most its hard bound (32 MiB:
// 512 messages of 64 KiB) and drops the rest, counted in Stats.DroppedQoS0. Every message is
// accounted for: delivered + dropped = sent. The old code queued all 1,500 (94 MiB).
func TestQoS0FloodWhileHandlerWaits(t *testing.T) {
	for _, v := range versions {
		t.Run(vname(v), func(t *testing.T) {
			leakCheck(t)
			fb := startFake(t, v)
			var c *fennec.Client
			var count atomic.Int64
			replied := make(chan struct{})
			var replyErr error
			cfg := fastReconnect(fb.url(), v)
			cfg.DefaultHandler = waitingHandler(&c, &count, replied, &replyErr)
			c, fc := connectFake(t, fb, cfg, false)
			fc.write(&packet.Publish{Topic: "trigger", QoS: 0})
			reply := fc.readType(packet.PUBLISH).(*packet.Publish)
			const n, size = 1500, 64 << 10
			payload := bytes.Repeat([]byte("x"), size)
			var b []byte
			for i := 0; i < n; i++ {
				b, _ = (&packet.Publish{Topic: "flood", Payload: payload}).Append(b[:0], v)
				fc.writeRaw(b)
			}
			fc.write(&packet.Puback{PacketID: reply.PacketID})
			select {
			case <-replied:
			case <-time.After(15 * time.Second):
				t.Fatal("the handler's Publish did not complete: its PUBACK was not read behind the flood")
			}
			if replyErr != nil {
				t.Fatalf("reply: %v", replyErr)
			}
			// A last message, after the handler stopped waiting, is queued, not dropped: once it
			// has been handled, so has everything queued before it.
			fc.write(&packet.Publish{Topic: "flood", Payload: []byte("end")})
			deadline := time.Now().Add(10 * time.Second)
			var st fennec.Stats
			for {
				st = c.Stats()
				if count.Load()+int64(st.DroppedQoS0) == n+1 || time.Now().After(deadline) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			got := count.Load()
			t.Logf("delivered %d, dropped %d of %d", got, st.DroppedQoS0, n+1)
			if got+int64(st.DroppedQoS0) != n+1 {
				t.Fatalf("delivered %d + dropped %d != sent %d", got, st.DroppedQoS0, n+1)
			}
			if bound := int64(32<<20)/size + 2; got > bound {
				t.Fatalf("delivered %d of the flood: the queue held more than its bound (%d)", got, bound)
			}
			if err := c.Disconnect(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			<-c.Done()
		})
	}
}

// TestQoS1FloodWhileHandlerWaits: the same with QoS 1 messages, which are not acknowledged
// before they are handled and so cannot be dropped. Past the queue's hard bound (32 MiB) the
// client closes the connection (an MQTT 5 broker that overruns our Receive Maximum gets
// DISCONNECT 0x93 first); the broker sends them again on the next connection. The old code
// queued all 1,000 (62 MiB) and never closed.
func TestQoS1FloodWhileHandlerWaits(t *testing.T) {
	for _, v := range versions {
		t.Run(vname(v), func(t *testing.T) {
			leakCheck(t)
			fb := startFake(t, v)
			var c *fennec.Client
			var count atomic.Int64
			replied := make(chan struct{})
			var replyErr error
			cfg := fastReconnect(fb.url(), v)
			cfg.ReceiveMaximum = 10
			cfg.DefaultHandler = waitingHandler(&c, &count, replied, &replyErr)
			c, fc := connectFake(t, fb, cfg, false)
			fc.write(&packet.Publish{Topic: "trigger", QoS: 0})
			fc.readType(packet.PUBLISH)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				var b []byte
				payload := bytes.Repeat([]byte("x"), 64<<10)
				for i := 1; i <= 1000; i++ {
					b, _ = (&packet.Publish{Topic: "flood", QoS: 1, PacketID: uint16(i), Payload: payload}).Append(b[:0], v)
					fc.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
					if _, err := fc.nc.Write(b); err != nil {
						return // the client closed the connection
					}
				}
			}()
			got := fc.expectClosed()
			wg.Wait()
			if v == packet.V5 {
				var d *packet.Disconnect
				for _, p := range got {
					if p, ok := p.(*packet.Disconnect); ok {
						d = p
					}
				}
				if d == nil || d.ReasonCode != packet.ReceiveMaximumExceeded {
					t.Fatalf("the client closed without DISCONNECT 0x93 (got %v)", got)
				}
			}
			// The client comes back; the broker sends the reply's PUBACK on the new connection.
			fc2 := fb.next(t)
			fc2.accept(true)
			reply := fc2.readType(packet.PUBLISH).(*packet.Publish)
			if !reply.Dup || reply.Topic != "reply" {
				t.Fatalf("after reconnect: %+v, want the reply resent with DUP", reply)
			}
			fc2.write(&packet.Puback{PacketID: reply.PacketID})
			select {
			case <-replied:
			case <-time.After(10 * time.Second):
				t.Fatal("the handler's Publish did not complete after the reconnect")
			}
			if replyErr != nil {
				t.Fatalf("reply: %v", replyErr)
			}
			if st := c.Stats(); st.Connections != 2 {
				t.Fatalf("Stats.Connections = %d, want 2", st.Connections)
			}
			c.Close()
			<-c.Done()
		})
	}
}

// TestDisconnectDoesNotWaitForHandler: Disconnect from another goroutine returns while a
// handler is still running (it may be the handler that calls it, which the client cannot tell
// without inspecting stacks); no handler starts after it, and Done is closed once the running
// one returned.
func TestDisconnectDoesNotWaitForHandler(t *testing.T) {
	leakCheck(t)
	fb := startFake(t, packet.V5)
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	cfg := fastReconnect(fb.url(), packet.V5)
	cfg.DefaultHandler = func(m *fennec.Message) {
		started <- struct{}{}
		<-release
	}
	c, fc := connectFake(t, fb, cfg, false)
	fc.write(&packet.Publish{Topic: "a"}, &packet.Publish{Topic: "b"})
	<-started
	go fc.expectClosed()
	if err := c.Disconnect(testCtx(t)); err != nil && !errors.Is(err, fennec.ErrUnacknowledged) {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
		t.Fatal("Done closed while a handler runs")
	default:
	}
	close(release)
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the handler returned")
	}
	if len(started) != 0 {
		t.Fatal("a handler started after Disconnect")
	}
}
