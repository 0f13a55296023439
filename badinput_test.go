package fennec_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

func wantMalformed(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, fennec.ErrProtocolViolation) || !errors.Is(err, packet.ErrMalformed) {
		t.Fatalf("err %v, want protocol violation wrapping ErrMalformed", err)
	}
}

func wantViolation(typ packet.Type) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var pe *fennec.ProtocolError
		if !errors.As(err, &pe) || pe.Packet != typ {
			t.Fatalf("err %v, want *ProtocolError for %v", err, typ)
		}
	}
}

// TestBadBroker: a broker that breaks the protocol gets its connection closed with a typed
// error saying what it did; the client keeps its session (the unacknowledged message is resent
// with DUP) and reconnects.
func TestBadBroker(t *testing.T) {
	cases := []struct {
		name  string
		do    func(fc *fakeConn, pubID uint16)
		check func(t *testing.T, err error)
	}{
		{"malformed", func(fc *fakeConn, _ uint16) { fc.writeRaw([]byte{0x40, 0x01, 0x00}) }, // PUBACK with 1-byte body
			func(t *testing.T, err error) {
				if !errors.Is(err, fennec.ErrProtocolViolation) || !errors.Is(err, packet.ErrMalformed) {
					t.Fatalf("err %v, want protocol violation wrapping ErrMalformed", err)
				}
			}},
		{"oversized", func(fc *fakeConn, _ uint16) {
			fc.writeRaw([]byte{0x30, 0xff, 0xff, 0xff, 0x7f}) // remaining length 268,435,455
		}, func(t *testing.T, err error) {
			if !errors.Is(err, packet.ErrPacketTooLarge) {
				t.Fatalf("err %v, want ErrPacketTooLarge", err)
			}
		}},
		{"unknown packet ID", func(fc *fakeConn, pubID uint16) { fc.write(&packet.Puback{PacketID: pubID + 100}) },
			func(t *testing.T, err error) {
				var pe *fennec.ProtocolError
				if !errors.As(err, &pe) || pe.Packet != packet.PUBACK {
					t.Fatalf("err %v, want *ProtocolError for PUBACK", err)
				}
			}},
		{"invalid UTF-8 topic", func(fc *fakeConn, _ uint16) { fc.writeRaw([]byte{0x30, 0x06, 0x00, 0x01, 0xff, 0x00, 'x', 'y'}) },
			wantMalformed},
		{"wildcard in a topic name", func(fc *fakeConn, _ uint16) { fc.writeRaw([]byte{0x30, 0x06, 0x00, 0x03, 'a', '/', '+', 0x00}) },
			wantMalformed},
		{"QoS 3", func(fc *fakeConn, _ uint16) { fc.writeRaw([]byte{0x36, 0x06, 0x00, 0x01, 'a', 0x00, 0x01, 0x00}) },
			wantMalformed},
		{"QoS 1 with packet ID 0", func(fc *fakeConn, _ uint16) { fc.writeRaw([]byte{0x32, 0x06, 0x00, 0x01, 'a', 0x00, 0x00, 0x00}) },
			func(t *testing.T, err error) {
				if !errors.Is(err, fennec.ErrProtocolViolation) || !errors.Is(err, packet.ErrProtocol) || !strings.Contains(err.Error(), "[MQTT-2.2.1-3]") {
					t.Fatalf("err %v, want protocol violation wrapping ErrProtocol and naming the rule", err)
				}
			}},
		{"SUBACK nobody asked for", func(fc *fakeConn, pubID uint16) {
			fc.write(&packet.Suback{PacketID: pubID + 7, ReasonCodes: []packet.ReasonCode{0}})
		}, wantViolation(packet.SUBACK)},
		{"PUBREC for a QoS 1 message", func(fc *fakeConn, pubID uint16) { fc.write(&packet.Pubrec{PacketID: pubID}) },
			wantViolation(packet.PUBREC)},
		{"PUBCOMP before PUBREC", func(fc *fakeConn, pubID uint16) { fc.write(&packet.Pubcomp{PacketID: pubID}) },
			wantViolation(packet.PUBCOMP)},
		{"second CONNACK", func(fc *fakeConn, _ uint16) { fc.write(&packet.Connack{}) },
			func(t *testing.T, err error) {
				var pe *fennec.ProtocolError
				if !errors.As(err, &pe) || pe.Packet != packet.CONNACK {
					t.Fatalf("err %v, want *ProtocolError for CONNACK", err)
				}
			}},
		{"server DISCONNECT", func(fc *fakeConn, _ uint16) {
			d := &packet.Disconnect{ReasonCode: packet.ServerShuttingDown}
			d.Props.SetReasonString("maintenance")
			fc.write(d)
		}, func(t *testing.T, err error) {
			var re *fennec.ReasonError
			if !errors.As(err, &re) || re.Packet != packet.DISCONNECT || re.Code != packet.ServerShuttingDown || re.Reason != "maintenance" {
				t.Fatalf("err %v, want ReasonError DISCONNECT 0x8B", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			leakCheck(t)
			fb := startFake(t, packet.V5)
			lost := make(chan error, 2)
			release := make(chan struct{})
			cfg := fastReconnect(fb.url(), packet.V5)
			cfg.ReceiveMaximum = 2
			cfg.OnConnectionLost = func(_ *fennec.Client, err error) { lost <- err }
			cfg.DefaultHandler = func(m *fennec.Message) {
				if m.Topic == "block" {
					<-release
				}
			}
			cfg.MaxPacketSize = 64 << 10
			c, fc := connectFake(t, fb, cfg, false)
			tok := c.PublishAsync(context.Background(), &fennec.Message{Topic: "t", QoS: 1, Payload: []byte("keep")})
			p := fc.readType(packet.PUBLISH).(*packet.Publish)
			tc.do(fc, p.PacketID)
			sent := fc.expectClosed()
			close(release)
			err := <-lost
			tc.check(t, err)
			// MQTT 5: the client says why before closing [MQTT-4.13.1-1].
			if tc.name != "server DISCONNECT" {
				if len(sent) == 0 || sent[len(sent)-1].Type() != packet.DISCONNECT {
					t.Fatalf("client sent %v before closing, want DISCONNECT last", sent)
				}
				if rc := sent[len(sent)-1].(*packet.Disconnect).ReasonCode; rc < 0x80 {
					t.Fatalf("DISCONNECT reason %v, want an error code", rc)
				}
			}
			// A broker that broke the protocol will likely do it again: not temporary (the client
			// still reconnects, below); a server shutting down is.
			if want := tc.name == "server DISCONNECT"; fennec.Temporary(err) != want {
				t.Errorf("Temporary(%v) = %v, want %v", err, !want, want)
			}
			// The client reconnects and resends the message it still owns.
			fc2 := fb.next(t)
			fc2.accept(true)
			p2 := fc2.readType(packet.PUBLISH).(*packet.Publish)
			if !p2.Dup || p2.PacketID != p.PacketID || string(p2.Payload) != "keep" {
				t.Fatalf("after reconnect: dup=%v id=%d %q", p2.Dup, p2.PacketID, p2.Payload)
			}
			fc2.write(&packet.Puback{PacketID: p2.PacketID})
			if err := tok.Wait(testCtx(t)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestNoConnack: a broker that accepts TCP but never answers CONNECT fails Connect within
// ConnectTimeout with a *ConnectError in phase mqtt.
func TestNoConnack(t *testing.T) {
	leakCheck(t)
	fb := startFake(t, packet.V5)
	cfg := fennec.Config{Server: fb.url(), ConnectTimeout: 200 * time.Millisecond}
	_, err := fennec.Connect(context.Background(), cfg)
	var ce *fennec.ConnectError
	if !errors.As(err, &ce) || ce.Phase != fennec.PhaseMQTT || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want ConnectError phase mqtt with DeadlineExceeded", err)
	}
}

// TestRefusedConnack: CONNACK refusals are *ReasonError with the code; 3.1.1 return codes keep
// their 3.1.1 meaning; no downgrade is attempted.
func TestRefusedConnack(t *testing.T) {
	for _, tc := range []struct {
		v    packet.Version
		code packet.ReasonCode
		want string
	}{
		{packet.V5, packet.NotAuthorized, "Not authorized"},
		{packet.V5, packet.UnsupportedProtocolVersion, "Unsupported Protocol Version"},
		{packet.V311, 5, "not authorized"},
		{packet.V311, 1, "unacceptable protocol version"},
	} {
		t.Run(vname(tc.v)+tc.code.String(), func(t *testing.T) {
			leakCheck(t)
			fb := startFake(t, tc.v)
			errc := make(chan error, 1)
			go func() {
				_, err := fennec.Connect(context.Background(), fennec.Config{Server: fb.url(), Version: tc.v})
				errc <- err
			}()
			fc := fb.next(t)
			conn := fc.read().(*packet.Connect)
			if conn.Version != tc.v {
				t.Fatalf("CONNECT version %v, want %v", conn.Version, tc.v)
			}
			fc.write(&packet.Connack{ReasonCode: tc.code})
			err := <-errc
			var re *fennec.ReasonError
			if !errors.As(err, &re) || re.Code != tc.code || re.Packet != packet.CONNACK {
				t.Fatalf("err %v, want ReasonError code %d", err, tc.code)
			}
			if !containsFold(err.Error(), tc.want) {
				t.Fatalf("err %q does not say %q", err, tc.want)
			}
			var ce *fennec.ConnectError
			if !errors.As(err, &ce) || ce.Phase != fennec.PhaseMQTT {
				t.Fatalf("err %v, want ConnectError phase mqtt", err)
			}
			// One connection only: no second attempt with another protocol version.
			select {
			case fc := <-fb.conns:
				fc.nc.Close()
				t.Fatal("the client tried again (silent downgrade?)")
			default:
			}
		})
	}
}

// TestKeepAliveHalfOpen: a broker that stops answering (a half-open connection) is detected
// within 1.5 × keep alive; PINGREQ is sent when idle. Time is virtual (synctest), so the bound
// is checked exactly.
func TestKeepAliveHalfOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, cli := pipePair()
		lost := make(chan error, 1)
		cfg := fennec.Config{Server: "mqtt://broker.test:1883", KeepAlive: 4 * time.Second,
			DisableReconnect: true,
			Dial:             func(context.Context, string, string) (netConn, error) { return cli, nil },
			OnConnectionLost: func(_ *fennec.Client, err error) { lost <- err }}
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
		start := time.Now()
		// Answer the first PINGREQ, then go silent.
		if _, ok := fc.read().(*packet.Pingreq); !ok {
			t.Fatal("want PINGREQ")
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Fatalf("first PINGREQ after %v, keep alive 4s [MQTT-3.1.2-23]", d)
		}
		fc.write(&packet.Pingresp{})
		answered := time.Now()
		go func() {
			for {
				if _, err := fc.rd.ReadPacket(packet.V5); err != nil {
					return
				}
			}
		}()
		err := <-lost
		if !errors.Is(err, fennec.ErrKeepAliveTimeout) {
			t.Fatalf("err %v, want ErrKeepAliveTimeout", err)
		}
		if d := time.Since(answered); d > 6*time.Second {
			t.Fatalf("dead link detected after %v, want ≤ 1.5 × 4s", d)
		}
		c.Close()
		srv.Close()
	})
}

// TestReceiveMaximumOverrun: a broker that sends more unacknowledged QoS 1 messages than our
// Receive Maximum (mosquitto 2.0.11 does, under load) is not disconnected; the excess waits in
// the bounded handler queue and every message is delivered and acknowledged.
func TestReceiveMaximumOverrun(t *testing.T) {
	leakCheck(t)
	fb := startFake(t, packet.V5)
	release := make(chan struct{})
	got := newCollector(10)
	cfg := fastReconnect(fb.url(), packet.V5)
	cfg.ReceiveMaximum = 2
	cfg.DefaultHandler = func(m *fennec.Message) {
		<-release
		got.handler(m)
	}
	lost := make(chan error, 1)
	cfg.OnConnectionLost = func(_ *fennec.Client, err error) { lost <- err }
	_, fc := connectFake(t, fb, cfg, false)
	for id := uint16(1); id <= 6; id++ {
		fc.write(&packet.Publish{QoS: 1, Topic: "t", PacketID: id, Payload: []byte{byte(id)}})
	}
	close(release)
	for id := uint16(1); id <= 6; id++ {
		if a := fc.readType(packet.PUBACK).(*packet.Puback); a.PacketID != id {
			t.Fatalf("PUBACK %d, want %d", a.PacketID, id)
		}
		if m := got.next(t); m.Payload[0] != byte(id) {
			t.Fatalf("message %d out of order", m.Payload[0])
		}
	}
	select {
	case err := <-lost:
		t.Fatalf("connection lost: %v", err)
	default:
	}
}

// TestDNSPhase: a resolver failure is reported as phase dns (the dial hook stands in for a
// resolver, so no test touches real DNS).
func TestDNSPhase(t *testing.T) {
	leakCheck(t)
	_, err := fennec.Connect(context.Background(), fennec.Config{Server: "mqtt://broker.invalid",
		Dial: func(context.Context, string, string) (net.Conn, error) {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "broker.invalid", IsNotFound: true}}
		}})
	var ce *fennec.ConnectError
	var de *net.DNSError
	if !errors.As(err, &ce) || ce.Phase != fennec.PhaseDNS || !errors.As(err, &de) {
		t.Fatalf("err %v, want ConnectError phase dns wrapping *net.DNSError", err)
	}
	if ce.Addr != "broker.invalid:1883" {
		t.Fatalf("Addr %q", ce.Addr)
	}
}

// TestPacketBeforeConnack: a broker that sends anything but CONNACK first fails the connection
// attempt in its MQTT phase with an error naming the packet; a flood of them costs nothing.
func TestPacketBeforeConnack(t *testing.T) {
	for _, v := range versions {
		for _, first := range []packet.Packet{&packet.Publish{Topic: "early"}, &packet.Puback{PacketID: 1}, &packet.Pingresp{}} {
			t.Run(fmt.Sprintf("%s/%v", vname(v), first.Type()), func(t *testing.T) {
				leakCheck(t)
				fb := startFake(t, v)
				res := make(chan error, 1)
				go func() {
					c, err := fennec.Connect(context.Background(), fennec.Config{Server: fb.url(), Version: v, ConnectTimeout: 5 * time.Second})
					if err == nil {
						c.Close()
					}
					res <- err
				}()
				fc := fb.next(t)
				fc.readType(packet.CONNECT)
				for range 1000 {
					fc.write(first)
				}
				fc.write(&packet.Connack{})
				err := <-res
				var ce *fennec.ConnectError
				if !errors.As(err, &ce) || ce.Phase != "mqtt" || !strings.Contains(err.Error(), first.Type().String()) {
					t.Fatalf("Connect: %v, want a *ConnectError in phase mqtt naming %v", err, first.Type())
				}
			})
		}
	}
}
