package mqttconn_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"time"

	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/mqttconn"
	"github.com/fennec-mqtt/fennec/packet"
)

// One MQTT connection, without the managed client's sessions and reconnects: Dial, read with
// Run and OnPacket, write with Send, and Disconnect. Here against an embedded broker.
func ExampleDial() {
	b, err := broker.New(broker.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	packets := make(chan packet.Packet, 8)
	c, ack, err := mqttconn.Dial(ctx, &mqttconn.Options{
		Scheme:   "mqtt",
		Addr:     b.Addr(),
		Connect:  packet.Connect{Version: packet.V5, ClientID: "example", CleanStart: true, KeepAlive: 30},
		OnPacket: func(_ *mqttconn.Conn, p packet.Packet) { packets <- p },
	})
	if err != nil {
		log.Fatal(err) // a *mqttconn.ConnectError names the phase: dns, tcp, tls, websocket, mqtt
	}
	go c.Run()
	fmt.Println("connected, session present:", ack.SessionPresent)

	sub := &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "greetings/#", QoS: 1}}}
	if err := c.Send(ctx, sub, nil); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%T\n", <-packets) // the SUBACK
	if err := c.Send(ctx, &packet.Publish{Topic: "greetings/en", Payload: []byte("hello")}, nil); err != nil {
		log.Fatal(err)
	}
	p := (<-packets).(*packet.Publish)
	fmt.Printf("%s: %s\n", p.Topic, p.Payload)
	if err := c.Disconnect(ctx, &packet.Disconnect{}); err != nil {
		log.Fatal(err)
	}
	// Output:
	// connected, session present: false
	// *packet.Suback
	// greetings/en: hello
}
