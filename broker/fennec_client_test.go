package broker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
)

// The same AWS behaviours seen through the Fennec client over MQTT 5: CONNACK properties, PUBACK
// and SUBACK reason code 0x87.
func TestAWSWithFennecClientV5(t *testing.T) {
	b := startAWS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := fennec.Connect(ctx, fennec.Config{
		Server:           "mqtts://" + b.TLSAddr,
		ClientID:         "thing-1",
		KeepAlive:        10 * time.Second,
		TLSConfig:        b.ClientTLSConfig("thing-1"),
		DisableReconnect: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, ack := c.ConnectionState()
	if !ack.Props.Has(packet.PropMaximumQoS) || ack.Props.MaximumQoS != 1 {
		t.Errorf("CONNACK Maximum QoS: %v", ack.Props.MaximumQoS)
	}
	if !ack.Props.Has(packet.PropServerKeepAlive) || ack.Props.ServerKeepAlive != 30 {
		t.Errorf("CONNACK Server Keep Alive: %v, want 30 for a 10 s request", ack.Props.ServerKeepAlive)
	}
	if !ack.Props.Has(packet.PropTopicAliasMaximum) || ack.Props.TopicAliasMaximum != 8 {
		t.Errorf("CONNACK Topic Alias Maximum: %v, want AWS IoT Core's 8", ack.Props.TopicAliasMaximum)
	}
	if err := c.Publish(ctx, &fennec.Message{Topic: "things/thing-1/ok", QoS: 1, Payload: []byte("m")}); err != nil {
		t.Fatalf("authorized publish: %v", err)
	}
	err = c.Publish(ctx, &fennec.Message{Topic: "things/thing-2/x", QoS: 1, Payload: []byte("m")})
	var re *fennec.ReasonError
	if !errors.As(err, &re) || re.Code != 0x87 {
		t.Fatalf("unauthorized publish: %v, want reason 0x87", err)
	}
	sa, err := c.Subscribe(ctx, func(*fennec.Message) {}, packet.Subscription{Filter: "things/thing-2/#", QoS: 1})
	if err == nil && (len(sa.ReasonCodes) != 1 || sa.ReasonCodes[0] != 0x87) {
		t.Fatalf("unauthorized subscribe: SUBACK %v", sa.ReasonCodes)
	}
	if err != nil && (!errors.As(err, &re) || re.Code != 0x87) {
		t.Fatalf("unauthorized subscribe: %v, want reason 0x87", err)
	}
	if !c.IsConnected() {
		t.Fatal("connection lost after 0x87: MQTT 5 clients stay connected")
	}
}

func fennecAWS(t *testing.T, b *brokertest.Broker, cn, id string, lost chan<- error) (*fennec.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := fennec.Connect(ctx, fennec.Config{
		Server:           "mqtts://" + b.TLSAddr,
		ClientID:         id,
		TLSConfig:        b.ClientTLSConfig(cn),
		DisableReconnect: true,
		OnConnectionLost: func(_ *fennec.Client, err error) {
			if lost != nil {
				lost <- err
			}
		},
	})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// A denied connect reaches the Fennec client as a failure in the MQTT phase without a reason
// code: there was no CONNACK.
func TestAWSWithFennecClientDeniedConnect(t *testing.T) {
	b := startAWS(t)
	_, err := fennecAWS(t, b, "thing-1", "not-my-thing", nil)
	if err == nil {
		t.Fatal("connected with a client ID the policy denies")
	}
	var re *fennec.ReasonError
	if errors.As(err, &re) {
		t.Fatalf("got a CONNACK reason %v; AWS sends no CONNACK", re.Code)
	}
	var ce *fennec.ConnectError
	if !errors.As(err, &ce) || ce.Phase != fennec.PhaseMQTT {
		t.Fatalf("error %v (%T), want a ConnectError in the MQTT phase", err, err)
	}
}

// Limits and takeover end an MQTT 5 connection with a DISCONNECT whose reason the Fennec client
// reports.
func TestAWSWithFennecClientDisconnectReasons(t *testing.T) {
	b := startAWS(t)
	for _, tc := range []struct {
		name string
		msg  *fennec.Message
		want packet.ReasonCode
	}{
		{"topic with 8 slashes", &fennec.Message{Topic: "things/thing-1/a/b/c/d/e/f/g", QoS: 1}, 0x90},
		{"payload over 128 KiB", &fennec.Message{Topic: "things/thing-1/big", QoS: 1, Payload: make([]byte, broker.AWSMaxPayload+1)}, 0x95},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lost := make(chan error, 1)
			c, err := fennecAWS(t, b, "thing-1", "thing-1", lost)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := c.Publish(ctx, tc.msg); err == nil {
				t.Fatal("publish succeeded")
			}
			var re *fennec.ReasonError
			if err := lostWithin(t, lost); !errors.As(err, &re) || re.Code != tc.want {
				t.Fatalf("connection lost with %v, want DISCONNECT %#x", err, byte(tc.want))
			}
		})
	}
	t.Run("client ID takeover", func(t *testing.T) {
		lost := make(chan error, 1)
		if _, err := fennecAWS(t, b, "thing-1", "thing-1", lost); err != nil {
			t.Fatal(err)
		}
		if _, err := fennecAWS(t, b, "thing-1", "thing-1", nil); err != nil {
			t.Fatal(err)
		}
		var re *fennec.ReasonError
		if err := lostWithin(t, lost); !errors.As(err, &re) || re.Code != 0x8E {
			t.Fatalf("first connection lost with %v, want DISCONNECT 0x8E session taken over", err)
		}
	})
}

// QoS 2: the CONNACK's Maximum QoS 1 stops it, in the client or at the broker (0x9B).
func TestAWSWithFennecClientQoS2(t *testing.T) {
	c, ctx := thing1Client(t)
	err := c.Publish(ctx, &fennec.Message{Topic: "things/thing-1/q", QoS: 2, Payload: []byte("m")})
	var re *fennec.ReasonError
	switch {
	case err == nil:
		t.Fatal("QoS 2 publish succeeded against a broker with Maximum QoS 1")
	case errors.As(err, &re) && re.Code == 0x9B: // refused by the broker
	case errors.Is(err, fennec.ErrNotSupported) && strings.Contains(err.Error(), "Maximum QoS is 1"): // refused by the client, which stays connected
		if !c.IsConnected() {
			t.Fatal("the client refused QoS 2 itself but lost its connection")
		}
	default:
		t.Fatalf("QoS 2 publish: %v, want a Maximum QoS refusal or reason 0x9B", err)
	}
}

// thing1Client connects the Fennec client as thing-1 to a fresh AWS emulation and returns it with
// a context that bounds the test's calls.
func thing1Client(t *testing.T) (*fennec.Client, context.Context) {
	t.Helper()
	c, err := fennecAWS(t, startAWS(t), "thing-1", "thing-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c, ctx
}

// lostWithin returns the error the client reported on losing its connection, failing the test
// after a generous bound.
func lostWithin(t *testing.T, lost <-chan error) error {
	t.Helper()
	select {
	case err := <-lost:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("the connection was not lost")
		return nil
	}
}

// iot:Receive through the Fennec client: of two messages on topics the subscription covers, only
// the one the policy lets the client receive arrives.
func TestAWSWithFennecClientReceive(t *testing.T) {
	c, ctx := thing1Client(t)
	got := make(chan string, 2)
	if _, err := c.Subscribe(ctx, func(m *fennec.Message) { got <- m.Topic }, packet.Subscription{Filter: "things/thing-1/#", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	// The policy lets only thing-1 publish below things/thing-1/, so it publishes to itself.
	for _, topic := range []string{"things/thing-1/secret", "things/thing-1/open"} {
		if err := c.Publish(ctx, &fennec.Message{Topic: topic, QoS: 1, Payload: []byte("m")}); err != nil {
			t.Fatalf("publish to %s: %v", topic, err)
		}
	}
	select {
	case topic := <-got:
		if topic != "things/thing-1/open" {
			t.Fatalf("received a message on %s, which iot:Receive denies", topic)
		}
	case <-ctx.Done():
		t.Fatal("the allowed message did not arrive")
	}
}
