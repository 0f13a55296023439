package capture_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"log/slog"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/capture"
)

// Record a client's connection into pcapng (a file in practice; Wireshark opens it). Over TLS,
// also set the TLS configuration's KeyLogWriter to rec.KeyLog(): the secrets go into the
// capture and Wireshark shows the MQTT packets decrypted.
func ExampleRecorder() {
	b, err := broker.New(broker.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	var out bytes.Buffer // e.g. os.Create("session.pcapng")
	rec, err := capture.New(&out)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	c, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.Addr(), Dial: rec.Dial(nil)})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Publish(ctx, &fennec.Message{Topic: "capture/example", QoS: 1, Payload: []byte("recorded")}); err != nil {
		log.Fatal(err)
	}
	c.Disconnect(ctx)
	if err := rec.Close(); err != nil {
		log.Fatal(err)
	}
	st := rec.Stats()
	fmt.Println("connections:", st.Connections)
	fmt.Println("pcapng:", bytes.HasPrefix(out.Bytes(), []byte{0x0A, 0x0D, 0x0D, 0x0A}))
	fmt.Println("payload inside:", bytes.Contains(out.Bytes(), []byte("recorded")))
	// Output:
	// connections: 1
	// pcapng: true
	// payload inside: true
}
