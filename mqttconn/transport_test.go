package mqttconn_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/mqttconn"
	"github.com/fennec-mqtt/fennec/packet"
)

// TestTransports: Dial over each transport against the embedded broker — plain TCP, TLS 1.3
// with a client certificate, WebSocket and WebSocket over TLS — and a PUBLISH the connection
// sends to itself comes back through Run. The accessors report the connection as dialled.
func TestTransports(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{WebSockets: true})
	for _, tc := range []struct {
		scheme, addr string
		tls          bool
	}{
		{"mqtt", b.TCPAddr, false},
		{"mqtts", b.TLSAddr, true},
		{"ws", b.WSAddr, false},
		{"wss", b.WSSAddr, true},
	} {
		t.Run(tc.scheme, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got := make(chan *packet.Publish, 1)
			subacked := make(chan struct{}, 1)
			var facts []string
			opts := &mqttconn.Options{Scheme: tc.scheme, Addr: tc.addr,
				Connect: packet.Connect{Version: packet.V5, ClientID: "transport-" + tc.scheme, CleanStart: true, KeepAlive: 7},
				OnPacket: func(_ *mqttconn.Conn, p packet.Packet) {
					switch p := p.(type) {
					case *packet.Publish:
						got <- p
					case *packet.Suback:
						subacked <- struct{}{}
					}
				},
				Trace: func(e mqttconn.Event) {
					if e.Note != "" {
						facts = append(facts, e.Note)
					}
				}}
			if tc.tls {
				opts.TLSConfig = b.ClientTLSConfig("fennec-client")
			}
			c, ack, err := mqttconn.Dial(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(nil)
			go c.Run()
			if got := c.Connack(); c.Version() != packet.V5 || got == nil || !reflect.DeepEqual(*got, *ack) || c.NetConn() == nil {
				t.Fatalf("version %v, CONNACK %+v (Dial gave %+v), net conn %v", c.Version(), got, ack, c.NetConn())
			}
			if c.KeepAlive() != 7*time.Second {
				t.Fatalf("keep alive %v, want the 7 s asked for (the broker sent no Server Keep Alive)", c.KeepAlive())
			}
			if c.MaxPacketSize() != ack.Props.MaximumPacketSize {
				t.Fatalf("the broker's Maximum Packet Size %d, CONNACK says %d", c.MaxPacketSize(), ack.Props.MaximumPacketSize)
			}
			if st := c.TLSState(); (st != nil) != tc.tls || (st != nil && st.Version != tls.VersionTLS13) {
				t.Fatalf("TLS state %+v over %s", st, tc.scheme)
			}
			if tc.tls && !strings.Contains(strings.Join(facts, "\n"), "TLS 1.3") {
				t.Fatalf("no TLS fact in the trace: %q", facts)
			}
			sub := &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "transport/" + tc.scheme, QoS: 0}}}
			if err := c.Send(ctx, sub, nil); err != nil {
				t.Fatal(err)
			}
			select {
			case <-subacked:
			case <-ctx.Done():
				t.Fatal("no SUBACK")
			}
			if err := c.Send(ctx, &packet.Publish{Topic: "transport/" + tc.scheme, Payload: []byte("hi")}, nil); err != nil {
				t.Fatal(err)
			}
			select {
			case p := <-got:
				if string(p.Payload) != "hi" {
					t.Fatalf("payload %q", p.Payload)
				}
			case <-ctx.Done():
				t.Fatal("the PUBLISH did not come back")
			}
			if err := c.Disconnect(ctx, &packet.Disconnect{}); err != nil {
				t.Fatalf("Disconnect: %v", err)
			}
			select {
			case <-c.Done():
			case <-ctx.Done():
				t.Fatal("Done not closed after Disconnect")
			}
		})
	}
}

// scriptedBroker accepts one connection, answers CONNECT with CONNACK and then runs script
// with the connection and a reader of the client's packets.
func scriptedBroker(t *testing.T, script func(nc net.Conn, rd *packet.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer nc.Close()
		rd := packet.NewReader(nc, 0)
		if _, err := rd.ReadPacket(packet.V5); err != nil {
			return
		}
		nc.Write(connackBytes(packet.V5))
		script(nc, rd)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// TestKeepAlivePing: an idle connection sends PINGREQ within its keep alive, and a broker that
// answers keeps it up.
func TestKeepAlivePing(t *testing.T) {
	pings := make(chan struct{}, 10)
	addr := scriptedBroker(t, func(nc net.Conn, rd *packet.Reader) {
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			p, err := rd.ReadPacket(packet.V5)
			if err != nil {
				return
			}
			if p.Type() == packet.PINGREQ {
				pings <- struct{}{}
				b, _ := (&packet.Pingresp{}).Append(nil, packet.V5)
				nc.Write(b)
			}
		}
	})
	c, _, err := mqttconn.Dial(context.Background(), &mqttconn.Options{Scheme: "mqtt", Addr: addr,
		Connect: packet.Connect{Version: packet.V5, ClientID: "ping", CleanStart: true, KeepAlive: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(nil)
	go c.Run()
	for i := range 2 {
		select {
		case <-pings:
		case <-time.After(5 * time.Second):
			t.Fatalf("ping %d not sent on an idle connection with a 1 s keep alive", i+1)
		}
	}
	if err := c.Err(); err != nil {
		t.Fatalf("the connection failed though the broker answers: %v", err)
	}
}

// TestKeepAliveNoAnswer: a broker that reads but never answers PINGREQ (a half-open path) ends
// the connection with ErrKeepAliveTimeout within about 1.5 keep alive intervals, not never.
func TestKeepAliveNoAnswer(t *testing.T) {
	addr := scriptedBroker(t, func(nc net.Conn, rd *packet.Reader) {
		nc.SetReadDeadline(time.Now().Add(15 * time.Second))
		for {
			if _, err := rd.ReadPacket(packet.V5); err != nil {
				return
			}
		}
	})
	c, _, err := mqttconn.Dial(context.Background(), &mqttconn.Options{Scheme: "mqtt", Addr: addr,
		Connect: packet.Connect{Version: packet.V5, ClientID: "silent", CleanStart: true, KeepAlive: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(nil)
	ended := make(chan error, 1)
	go func() { ended <- c.Run() }()
	select {
	case err := <-ended:
		if !errors.Is(err, mqttconn.ErrKeepAliveTimeout) || !errors.Is(c.Err(), mqttconn.ErrKeepAliveTimeout) {
			t.Fatalf("Run: %v (Err %v), want ErrKeepAliveTimeout", err, c.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a broker that never answers PINGREQ kept the connection up for 10 s with a 1 s keep alive")
	}
}

// TestErrorTexts: each error type says what happened in words, names the phase or the reason
// code, and matches with errors.Is / errors.As as documented.
func TestErrorTexts(t *testing.T) {
	ce := &mqttconn.ConnectError{Phase: mqttconn.PhaseTLS, Addr: "broker:8883", Err: errors.New("bad certificate")}
	if s := ce.Error(); !strings.Contains(s, "tls") || !strings.Contains(s, "broker:8883") || !strings.Contains(s, "bad certificate") {
		t.Errorf("ConnectError: %q", s)
	}
	if !errors.Is(ce, ce.Err) {
		t.Error("a ConnectError does not unwrap to its cause")
	}
	re := &mqttconn.ReasonError{Packet: packet.CONNACK, Code: packet.ReasonCode(0x87), Version: packet.V5, Reason: "policy"}
	if s := re.Error(); !strings.Contains(s, "refused the connection") || !strings.Contains(s, "0x87") || !strings.Contains(strings.ToLower(s), "not authorized") || !strings.Contains(s, "policy") {
		t.Errorf("ReasonError: %q", s)
	}
	if m := re.Meaning(); !strings.Contains(strings.ToLower(m), "not authorized") {
		t.Errorf("ReasonError.Meaning: %q", m)
	}
	pe := &mqttconn.ProtocolError{Packet: packet.PUBLISH, Msg: "PUBLISH before CONNACK", Err: packet.ErrMalformed}
	if s := pe.Error(); !strings.Contains(s, "PUBLISH before CONNACK") || !errors.Is(pe, packet.ErrMalformed) {
		t.Errorf("ProtocolError: %q", s)
	}
	rm := &mqttconn.ReceiveMaximumError{Max: 10}
	if s := rm.Error(); !strings.Contains(s, "10") {
		t.Errorf("ReceiveMaximumError: %q", s)
	}
	if !errors.Is(rm, mqttconn.ErrProtocolViolation) || !errors.Is(pe, mqttconn.ErrProtocolViolation) {
		t.Error("a broker exceeding Receive Maximum or breaking the protocol is not an ErrProtocolViolation")
	}
}
