package filestore_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/session/filestore"
)

// A client whose session survives a crash of its process: Publish returns once the message is
// in the file (one fsync for concurrent publishers) and the broker acknowledged it; what the
// broker had not acknowledged is sent again after a restart with the same client ID.
func ExampleOpen() {
	b, err := broker.New(broker.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	dir, err := os.MkdirTemp("", "filestore")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := filestore.Open(filepath.Join(dir, "mqtt-session.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	c, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.Addr(), ClientID: "sensor-17",
		Store: store, SessionExpiry: 24 * time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Publish(ctx, &fennec.Message{Topic: "sensors/17/t", QoS: 1, Payload: []byte("21.5")}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("unacknowledged:", c.Pending())
	// Output: unacknowledged: 0
}
