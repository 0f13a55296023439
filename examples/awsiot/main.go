package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/fennec-mqtt/fennec/awsiot"
	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/examples/awsiot/emu"
	"github.com/fennec-mqtt/fennec/pki"
)

func main() {
	endpoint := flag.String("endpoint", "", "AWS IoT device data endpoint (…-ats.iot.REGION.amazonaws.com)")
	thing := flag.String("thing", "dev1", "thing name (and client ID)")
	cert := flag.String("cert", "", "device certificate (PEM or DER)")
	key := flag.String("key", "", "device private key")
	port := flag.Int("port", 8883, "8883, or 443 (ALPN x-amzn-mqtt-ca)")
	emulate := flag.Bool("emulate", false, "run against the embedded broker's AWS IoT emulation")
	wait := flag.Duration("wait", 30*time.Second, "how long to wait for a desired-state change")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, *emulate, awsiot.Config{Endpoint: *endpoint, Port: *port, ThingName: *thing,
		Cert: pki.FileSource(*cert), Key: pki.FileSource(*key)}, *wait); err != nil {
		fmt.Fprintln(os.Stderr, "awsiot:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, emulate bool, cfg awsiot.Config, wait time.Duration) error {
	var app func(context.Context) error
	if emulate {
		dir, err := os.MkdirTemp("", "fennec-awsiot-example-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		e, err := emu.Start(ctx, dir, []string{cfg.ThingName}, broker.AWS{})
		if err != nil {
			return err
		}
		defer e.Close()
		fmt.Fprintf(out, "emulation   AWS IoT Core emulation on %s (thing %s)\n", e.Endpoint, cfg.ThingName)
		cfg = e.Config(cfg.ThingName)
		// In the cloud an application or the console changes the desired state; here a second
		// connection does, as the same thing with another client ID.
		app = func(ctx context.Context) error {
			acfg := e.Config(cfg.ThingName)
			acfg.ClientID = cfg.ThingName + "-app"
			a, err := awsiot.Connect(ctx, acfg)
			if err != nil {
				return err
			}
			defer a.Disconnect(ctx)
			_, err = awsiot.NewShadow(a, cfg.ThingName, "").Update(ctx, awsiot.Update{Desired: map[string]any{"led": "on"}})
			return err
		}
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintln(out, "warning    ", w)
	}

	c, err := awsiot.Connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Disconnect(context.Background())
	fmt.Fprintf(out, "connected   as %s\n", c.ClientID())
	sh := awsiot.NewShadow(c, cfg.ThingName, "")

	deltas := make(chan awsiot.Delta, 4)
	if err := sh.OnDelta(ctx, func(d awsiot.Delta) { deltas <- d }); err != nil {
		return err
	}
	fmt.Fprintf(out, "subscribed  %s\n", sh.Topic("update/delta"))

	reported := map[string]any{"led": "off", "firmware": "1.0.0"}
	doc, err := sh.Update(ctx, awsiot.Update{Reported: reported})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "reported    %s -> version %d\n", js(reported), doc.Version)

	if app != nil {
		if err := app(ctx); err != nil {
			return fmt.Errorf("changing the desired state: %w", err)
		}
	}
	fmt.Fprintf(out, "waiting     up to %s for a desired-state change\n", wait)
	select {
	case d := <-deltas:
		fmt.Fprintf(out, "delta       %s (version %d)\n", js(d.State), d.Version)
		for k, v := range d.State {
			reported[k] = v // "apply" it: here, just take the value
		}
		doc, err := sh.Update(ctx, awsiot.Update{Reported: d.State})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "reported    %s -> version %d\n", js(d.State), doc.Version)
	case <-time.After(wait):
		fmt.Fprintln(out, "no change of the desired state")
	case <-ctx.Done():
		return ctx.Err()
	}
	doc, err = sh.Get(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "shadow      desired %s, reported %s, version %d\n", js(doc.State.Desired), js(doc.State.Reported), doc.Version)
	if len(doc.State.Delta) == 0 {
		fmt.Fprintln(out, "in sync     the device reports what is desired")
	}
	return nil
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
