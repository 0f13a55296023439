package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
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
