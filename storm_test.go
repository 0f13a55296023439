package fennec_test

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// droppingBroker accepts every connection, answers CONNACK with code and closes at once. It
// counts the connections.
func droppingBroker(t *testing.T, v packet.Version, code packet.ReasonCode) (string, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			nc.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := packet.NewReader(nc, 0).ReadPacket(v); err == nil {
				b, _ := (&packet.Connack{ReasonCode: code}).Append(nil, v)
				nc.Write(b)
			}
			nc.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return "mqtt://" + l.Addr().String(), &n
}

// TestNoReconnectStorm: a broker that accepts and drops every connection at once meets a
// growing backoff. The client used to skip the backoff after every lost connection and to reset
// its attempt count at each CONNACK: 65 connections in 5 s from a default Config, 12,000-18,000
// with ConnectRetry. With the default policy (100 ms doubling, full jitter) the expected count
// in 3 s is about 7.
func TestNoReconnectStorm(t *testing.T) {
	for _, retry := range []bool{false, true} {
		name := "default"
		if retry {
			name = "ConnectRetry"
		}
		t.Run(name, func(t *testing.T) {
			leakCheck(t)
			url, n := droppingBroker(t, packet.V311, 0)
			cfg := fennec.Config{Server: url, Version: packet.V311, ConnectRetry: retry}
			c, err := fennec.Connect(testCtx(t), cfg)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second)
			c.Close()
			if got := n.Load(); got > 14 {
				t.Fatalf("%d connections in 3 s to a broker that drops each one: no backoff", got)
			} else if got < 2 {
				t.Fatalf("%d connections in 3 s: the client stopped reconnecting", got)
			}
		})
	}
}

// TestBackoffGrowsAcrossLosses: the attempt number given to Backoff grows with each loss and
// failed attempt, and starts again from 1 only after a connection that stayed up for
// BackoffResetAfter.
func TestBackoffGrowsAcrossLosses(t *testing.T) {
	leakCheck(t)
	url, _ := droppingBroker(t, packet.V5, 0)
	attempts := make(chan int, 100)
	cfg := fennec.Config{Server: url, ConnectRetry: true, BackoffResetAfter: time.Hour,
		Backoff: func(n int) time.Duration { attempts <- n; return 5 * time.Millisecond }}
	c, err := fennec.Connect(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for want := 1; want <= 10; want++ {
		select {
		case got := <-attempts:
			if got != want {
				t.Fatalf("Backoff(%d), want Backoff(%d): the count was reset", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no reconnect")
		}
	}

	// A connection that stays up past BackoffResetAfter starts the count again.
	fb := startFake(t, packet.V5)
	attempts2 := make(chan int, 100)
	cfg2 := fennec.Config{Server: fb.url(), ClientID: "stable", BackoffResetAfter: 50 * time.Millisecond,
		Backoff: func(n int) time.Duration { attempts2 <- n; return 5 * time.Millisecond }}
	c2, fc := connectFake(t, fb, cfg2, false)
	defer c2.Close()
	for i := 0; i < 3; i++ {
		time.Sleep(100 * time.Millisecond) // stable
		fc.nc.Close()
		if got := <-attempts2; got != 1 {
			t.Fatalf("after a stable connection Backoff(%d), want Backoff(1)", got)
		}
		fc = fb.next(t)
		fc.accept(false)
	}
}

// TestPermanentRefusalBacksOff: a CONNACK refusal that retrying cannot fix is reported through
// OnConnectError and waits the maximum backoff (Backoff(0)) before the next attempt.
func TestPermanentRefusalBacksOff(t *testing.T) {
	for _, tc := range []struct {
		v    packet.Version
		code packet.ReasonCode
	}{{packet.V311, 5}, {packet.V311, 4}, {packet.V5, 0x87}, {packet.V5, 0x86}, {packet.V5, 0x85}, {packet.V5, 0x84}} {
		t.Run(vname(tc.v)+"/"+tc.code.String(), func(t *testing.T) {
			leakCheck(t)
			url, n := droppingBroker(t, tc.v, tc.code)
			errs := make(chan error, 10)
			var zero atomic.Int64
			cfg := fennec.Config{Server: url, Version: tc.v, ConnectRetry: true,
				Backoff: func(a int) time.Duration {
					if a == 0 {
						zero.Add(1)
						return time.Hour
					}
					return time.Millisecond
				},
				OnConnectError: func(_ *fennec.Client, err error) { errs <- err }}
			c, err := fennec.Connect(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			select {
			case err := <-errs:
				var re *fennec.ReasonError
				if !errors.As(err, &re) || re.Code != tc.code || !fennec.Permanent(err) || fennec.Temporary(err) {
					t.Fatalf("OnConnectError(%v): want a permanent CONNACK refusal %v", err, tc.code)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("OnConnectError was not called")
			}
			time.Sleep(200 * time.Millisecond)
			if got := n.Load(); got != 1 {
				t.Fatalf("%d attempts after a permanent refusal, want 1 (then the maximum backoff)", got)
			}
			if zero.Load() != 1 {
				t.Fatalf("Backoff(0) asked %d times, want 1", zero.Load())
			}
		})
	}
}

// TestTemporary: only what may succeed unchanged on a retry is temporary.
func TestTemporary(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&fennec.ReasonError{Packet: packet.CONNACK, Code: 3, Version: packet.V311}, true},
		{&fennec.ReasonError{Packet: packet.CONNACK, Code: 5, Version: packet.V311}, false},
		{&fennec.ReasonError{Packet: packet.CONNACK, Code: 0x89, Version: packet.V5}, true},
		{&fennec.ReasonError{Packet: packet.CONNACK, Code: 0x87, Version: packet.V5}, false},
		{fennec.ErrConnectionLost, true},
		{fennec.ErrKeepAliveTimeout, true},
		{fennec.ErrQueueFull, true},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{fennec.ErrClosed, false},
		{fennec.ErrNotSupported, false},
		{fennec.ErrPacketTooLarge, false},
		{&fennec.ProtocolError{Packet: packet.PUBACK, Msg: "unknown packet ID"}, false},
		{errors.New("fennec: subscribe: no topic filter"), false},
		{nil, false},
	} {
		if got := fennec.Temporary(tc.err); got != tc.want {
			t.Errorf("Temporary(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestFullJitter: ExponentialBackoff draws from [0, d] (full jitter, as documented), and
// attempt 0 is the maximum.
func TestFullJitter(t *testing.T) {
	b := fennec.ExponentialBackoff(100*time.Millisecond, time.Second)
	low := 0
	for i := 0; i < 1000; i++ {
		d := b(1)
		if d < 0 || d > 100*time.Millisecond {
			t.Fatalf("Backoff(1) = %v outside [0, 100ms]", d)
		}
		if d < 50*time.Millisecond {
			low++
		}
		if d := b(20); d > time.Second {
			t.Fatalf("Backoff(20) = %v above the maximum", d)
		}
	}
	if low < 300 {
		t.Fatalf("%d of 1000 waits below d/2: not full jitter", low)
	}
	if d := b(0); d != time.Second {
		t.Fatalf("Backoff(0) = %v, want the maximum", d)
	}
}

// TestSubscribeInFlightSentOnce: a SUBSCRIBE whose connection drops before its SUBACK is sent
// once on the next connection, even when the broker lost the session. The client used to send
// it twice there: once as a restored subscription and once more by the waiting Subscribe.
func TestSubscribeInFlightSentOnce(t *testing.T) {
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(vname(v), func(t *testing.T) {
			leakCheck(t)
			fb := startFake(t, v)
			c, fc := connectFake(t, fb, fastReconnect(fb.url(), v), false)
			res := make(chan error, 1)
			go func() {
				_, err := c.Subscribe(testCtx(t), func(*fennec.Message) {}, sub("a/#", 1))
				res <- err
			}()
			fc.readType(packet.SUBSCRIBE)
			fc.nc.Close()

			fc2 := fb.next(t)
			fc2.accept(false)
			s := fc2.readType(packet.SUBSCRIBE).(*packet.Subscribe)
			fc2.write(&packet.Suback{PacketID: s.PacketID, ReasonCodes: []packet.ReasonCode{1}})
			if err := <-res; err != nil {
				t.Fatal(err)
			}
			// Nothing else follows within 300 ms (keep alive is 60 s, so no PINGREQ either).
			fc2.nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if p, err := fc2.rd.ReadPacket(v); err == nil {
				t.Fatalf("after the SUBACK the client sent %v (a second SUBSCRIBE)", p.Type())
			}
			// The granted subscription is restored, once, when the broker loses the session.
			fc2.nc.Close()
			fc3 := fb.next(t)
			fc3.accept(false)
			s = fc3.readType(packet.SUBSCRIBE).(*packet.Subscribe)
			if len(s.Subscriptions) != 1 || s.Subscriptions[0].Filter != "a/#" {
				t.Fatalf("restored %+v", s.Subscriptions)
			}
			fc3.write(&packet.Suback{PacketID: s.PacketID, ReasonCodes: []packet.ReasonCode{1}})
			fc3.nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if p, err := fc3.rd.ReadPacket(v); err == nil {
				t.Fatalf("after the restored SUBACK the client sent %v", p.Type())
			}
		})
	}
}
