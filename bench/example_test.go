package bench_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/bench"
	"github.com/fennec-mqtt/fennec/broker"
)

// Two publishers and two subscribers through a broker, QoS 1, 500 messages each: every message
// counted at every subscriber, with loss, duplicates and order (and the rates and latency
// percentiles, which vary from run to run and are not printed here).
func ExampleRun() {
	b, err := broker.New(broker.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	res, err := bench.Run(context.Background(), bench.Config{
		Mode:        bench.PubSub,
		Client:      fennec.Config{Server: "mqtt://" + b.Addr()},
		Publishers:  2,
		Subscribers: 2,
		QoS:         1,
		Count:       500,
		Topic:       "example/bench/%i",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("connected:", res.Connected)
	fmt.Println("sent:", res.Sent, "received:", res.Received, "lost:", res.Lost, "duplicates:", res.Receive.Duplicates)
	// Output:
	// connected: 4
	// sent: 1000 received: 2000 lost: 0 duplicates: 0
}
