package cmdutil

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fennec-mqtt/fennec"
)

// WithThing connects as the connection flags say and runs op for the thing --thing names
// (default: the client ID; the client ID defaults to the thing, as AWS policies name it).
func WithThing(ctx context.Context, streams IO, conn *ConnFlags, thing string, op func(context.Context, *fennec.Client, string) error) (err error) {
	defer func() { err = conn.Report(streams, err) }()
	spec, err := conn.BuildSpec(streams, nil)
	if err != nil {
		return err
	}
	if thing == "" {
		thing = spec.ClientID
	}
	if thing == "" {
		return UsageErrorf("no thing: give --thing NAME (or -i CLIENT_ID, which names it by default)")
	}
	if spec.ClientID == "" {
		spec.ClientID = thing
	}
	c, err := DialClient(ctx, spec)
	if err != nil {
		return err
	}
	defer func() {
		if derr := Disconnect(ctx, c, spec); err == nil {
			err = derr
		}
	}()
	fc, ok := c.(*FennecClient)
	if !ok {
		return fmt.Errorf("unexpected client %T", c)
	}
	return op(ctx, fc.Client, thing)
}

// WatchLines runs subscribe, whose emit queues one output line, and prints the lines until
// count of them (0: no limit), until wait has passed (0: no limit), or until ctx ends.
func WatchLines(ctx context.Context, streams IO, count int, wait time.Duration, subscribe func(ctx context.Context, emit func([]byte)) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if wait > 0 {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, wait)
		defer c2()
	}
	lines := make(chan []byte, 16)
	emit := func(b []byte) {
		select {
		case lines <- b:
		case <-ctx.Done():
		}
	}
	if err := subscribe(ctx, emit); err != nil {
		return err
	}
	for n := 0; ; {
		select {
		case l := <-lines:
			fmt.Fprintf(streams.Out, "%s\n", l)
			if n++; count > 0 && n >= count {
				return nil
			}
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil
			}
			return ctx.Err()
		}
	}
}
