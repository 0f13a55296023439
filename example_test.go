package fennec_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/session/filestore"
)

func ExampleParseURL() {
	u, err := fennec.ParseURL("wss://user:secret@broker.example.com/mqtt")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.Scheme, u.Addr(), u.Path, u.Username, u.TLS())
	fmt.Println(u) // no password
	// Output:
	// wss broker.example.com:443 /mqtt user true
	// wss://broker.example.com:443/mqtt
}

func ExampleConnect() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := fennec.Connect(ctx, fennec.Config{
		Server:   "mqtt://localhost:1883",
		ClientID: "sensor-17",
		Version:  packet.V5,
		Logger:   slog.Default(),
		OnConnectionLost: func(_ *fennec.Client, err error) {
			log.Printf("connection lost (reconnecting): %v", err)
		},
	})
	var refused *fennec.ReasonError
	var cerr *fennec.ConnectError
	switch {
	case errors.As(err, &refused):
		log.Fatalf("the broker refused us: %s (code 0x%02X)", refused.Meaning(), byte(refused.Code))
	case errors.As(err, &cerr):
		log.Fatalf("could not connect (%s phase): %v", cerr.Phase, err)
	case err != nil:
		log.Fatal(err)
	}
	defer c.Disconnect(context.Background())

	if err := c.Publish(ctx, &fennec.Message{Topic: "sensors/17/temp", QoS: 1, Payload: []byte("21.5")}); err != nil {
		log.Print(err)
	}
}

func ExampleClient_Subscribe() {
	ctx := context.Background()
	c, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://localhost:1883"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect(ctx)
	// Handlers run in order on one goroutine; they may publish.
	_, err = c.Subscribe(ctx, func(m *fennec.Message) {
		c.Publish(ctx, &fennec.Message{Topic: "replies/" + m.Topic, QoS: 1, Payload: m.Payload})
	}, packet.Subscription{Filter: "requests/+", QoS: 1}, packet.Subscription{Filter: "$share/workers/jobs/#", QoS: 1})
	if err != nil {
		log.Fatal(err)
	}
}

func ExampleClient_PublishAsync() {
	ctx := context.Background()
	c, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://localhost:1883"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect(ctx)
	// Many QoS 1 messages in flight at once, in order; each token reports its PUBACK.
	var toks []*fennec.Token
	for i := 0; i < 1000; i++ {
		toks = append(toks, c.PublishAsync(ctx, &fennec.Message{Topic: "bulk", QoS: 1, Payload: []byte(fmt.Sprint(i))}))
	}
	for _, t := range toks {
		if err := t.Wait(ctx); err != nil {
			log.Print(err)
		}
	}
}

// A durable session: messages accepted by Publish survive a crash and are sent by the next
// process that starts with the same client ID and store.
func ExampleConfig_durableSession() {
	store, err := filestore.Open("mqtt-session.db")
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	c, err := fennec.Connect(ctx, fennec.Config{
		Server:        "mqtts://broker.example.com",
		ClientID:      "sensor-17",
		SessionExpiry: 24 * time.Hour,
		Store:         store,
		ConnectRetry:  true, // start offline if need be; publishes queue meanwhile
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect(ctx)
	tok := c.PublishAsync(ctx, &fennec.Message{Topic: "sensors/17/alarm", QoS: 2, Payload: []byte("door open")})
	if errors.Is(tok.Err(), fennec.ErrQueueFull) {
		log.Print("offline too long: queue full")
	}
}
