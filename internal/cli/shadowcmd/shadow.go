package shadowcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/awsiot"
	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
)

// shadowOptions are the flags of fennec shadow and its subcommands.
type shadowOptions struct {
	conn     cmdutil.ConnFlags
	thing    string
	name     string
	desired  string
	reported string
	version  int64
	count    int
	wait     time.Duration
	docs     bool
}

func New(streams cmdutil.IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "shadow get|update|delete|watch",
		Short: "AWS IoT Device Shadow: get, update, delete, watch deltas",
		Long: `The Device Shadow of a thing, over MQTT, as AWS IoT Core serves it (and the embedded broker's
AWS emulation: fennec broker --aws).

The connection flags are those of pub and sub (or a profile). --thing names the thing (default:
the client ID, -i); --name a named shadow (default: the classic one). Each request carries a
client token and waits for its accepted or rejected answer; a rejection prints AWS's code and
message and exits 4.`,
		Example: `  fennec shadow get --profile aws --thing dev1
  fennec shadow update --profile aws --thing dev1 --desired '{"led":"on"}'
  fennec shadow update --profile aws --thing dev1 --reported '{"led":"on"}' --version 7
  fennec shadow watch --profile aws --thing dev1          # one JSON line per delta
  fennec shadow delete --profile aws --thing dev1 --name config`,
	}
	// Each subcommand has its own options: ConnFlags remembers the flag set it was registered on.
	examples := map[string]string{
		"get":    "  fennec shadow get --profile aws --thing dev1\n  fennec shadow get --profile aws --thing dev1 --name config --json",
		"update": "  fennec shadow update --profile aws --thing dev1 --desired '{\"led\":\"on\"}'\n  fennec shadow update --profile aws --thing dev1 --reported '{\"led\":\"on\"}' --version 7\n  fennec shadow update --profile aws --thing dev1 --desired null",
		"delete": "  fennec shadow delete --profile aws --thing dev1 --name config",
		"watch":  "  fennec shadow watch --profile aws --thing dev1\n  fennec shadow watch --profile aws --thing dev1 --documents -C 1",
	}
	sub := func(use, short string, run func(o *shadowOptions, ctx context.Context, streams cmdutil.IO, sh *awsiot.Shadow) error) (*cobra.Command, *shadowOptions) {
		o := &shadowOptions{}
		c := &cobra.Command{
			Use:     use,
			Short:   short,
			Example: examples[use],
			Args:    cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				return o.run(c.Context(), streams, func(ctx context.Context, streams cmdutil.IO, sh *awsiot.Shadow) error {
					return run(o, ctx, streams, sh)
				})
			},
		}
		o.conn.Register(c)
		fs := c.Flags()
		fs.StringVar(&o.thing, "thing", "", "the thing whose shadow this is (default: the client ID)")
		fs.StringVar(&o.name, "name", "", "a named shadow (default: the classic shadow)")
		fs.DurationVar(&o.wait, "wait", 10*time.Second, "how long to wait for the answer")
		return c, o
	}
	get, _ := sub("get", "Print the shadow document", (*shadowOptions).get)
	update, o := sub("update", "Update desired and/or reported state", (*shadowOptions).update)
	update.Flags().StringVar(&o.desired, "desired", "", "JSON object to merge into desired (null deletes a key; 'null' deletes the section)")
	update.Flags().StringVar(&o.reported, "reported", "", "JSON object to merge into reported")
	update.Flags().Int64Var(&o.version, "version", 0, "apply only if the shadow is at this version (optimistic locking)")
	del, _ := sub("delete", "Delete the shadow", (*shadowOptions).delete)
	watch, o := sub("watch", "Print each delta (desired values not yet reported) as a JSON line", (*shadowOptions).watch)
	watch.Flags().IntVarP(&o.count, "count", "C", 0, "exit after this many messages")
	watch.Flags().BoolVar(&o.docs, "documents", false, "print update/documents (previous and current document) instead of deltas")
	watch.Flags().Lookup("wait").Usage = "exit after this long (0: until interrupted)"
	watch.Flags().Lookup("wait").DefValue = "0s"
	cmd.AddCommand(get, update, del, watch)
	return cmd
}

func (o *shadowOptions) run(ctx context.Context, streams cmdutil.IO, op func(context.Context, cmdutil.IO, *awsiot.Shadow) error) error {
	if o.wait < 0 || o.count < 0 {
		return o.conn.Report(streams, cmdutil.UsageErrorf("--wait and -C take positive values"))
	}
	return cmdutil.WithThing(ctx, streams, &o.conn, o.thing, func(ctx context.Context, c *fennec.Client, thing string) error {
		return op(ctx, streams, awsiot.NewShadow(c, thing, o.name))
	})
}

func (o *shadowOptions) timed(ctx context.Context) (context.Context, context.CancelFunc) {
	if o.wait > 0 {
		return context.WithTimeout(ctx, o.wait)
	}
	return context.WithCancel(ctx)
}

func (o *shadowOptions) get(ctx context.Context, streams cmdutil.IO, sh *awsiot.Shadow) error {
	ctx, cancel := o.timed(ctx)
	defer cancel()
	doc, err := sh.Get(ctx)
	if err != nil {
		return shadowError("get", sh, err)
	}
	return cmdutil.PrintJSON(streams, doc, o.conn.JSONOut)
}

func (o *shadowOptions) update(ctx context.Context, streams cmdutil.IO, sh *awsiot.Shadow) error {
	var u awsiot.Update
	for _, f := range []struct {
		flag, val string
		dst       *map[string]any
		clear     *bool
	}{{"--desired", o.desired, &u.Desired, &u.ClearDesired}, {"--reported", o.reported, &u.Reported, &u.ClearReported}} {
		switch strings.TrimSpace(f.val) {
		case "":
		case "null":
			*f.clear = true
		default:
			if err := json.Unmarshal([]byte(f.val), f.dst); err != nil {
				return cmdutil.UsageErrorf("%s %q: a JSON object, e.g. '{\"led\":\"on\"}' (%v)", f.flag, f.val, err)
			}
		}
	}
	if u.Desired == nil && u.Reported == nil && !u.ClearDesired && !u.ClearReported {
		return cmdutil.UsageErrorf("nothing to update: give --desired JSON and/or --reported JSON")
	}
	u.Version = o.version
	ctx, cancel := o.timed(ctx)
	defer cancel()
	doc, err := sh.Update(ctx, u)
	if err != nil {
		return shadowError("update", sh, err)
	}
	return cmdutil.PrintJSON(streams, doc, o.conn.JSONOut)
}

func (o *shadowOptions) delete(ctx context.Context, streams cmdutil.IO, sh *awsiot.Shadow) error {
	ctx, cancel := o.timed(ctx)
	defer cancel()
	v, err := sh.Delete(ctx)
	if err != nil {
		return shadowError("delete", sh, err)
	}
	if o.conn.JSONOut {
		b, _ := json.Marshal(map[string]any{"deleted": true, "version": v})
		fmt.Fprintf(streams.Out, "%s\n", b)
	} else {
		fmt.Fprintf(streams.Out, "deleted %s (it was at version %d)\n", sh.Topic("")[:len(sh.Topic(""))-1], v)
	}
	return nil
}

func (o *shadowOptions) watch(ctx context.Context, streams cmdutil.IO, sh *awsiot.Shadow) error {
	return cmdutil.WatchLines(ctx, streams, o.count, o.watchWait(), func(ctx context.Context, emit func([]byte)) error {
		var err error
		if o.docs {
			err = sh.OnDocuments(ctx, func(raw json.RawMessage) { emit(raw) })
		} else {
			err = sh.OnDelta(ctx, func(d awsiot.Delta) {
				b, _ := json.Marshal(d)
				emit(b)
			})
		}
		if err != nil {
			return shadowError("watch", sh, err)
		}
		return nil
	})
}

// watchWait is watch's --wait: only when given (its default of 10 s is the other subcommands').
func (o *shadowOptions) watchWait() time.Duration {
	if o.conn.Changed("wait") {
		return o.wait
	}
	return 0
}

// shadowError gives a shadow failure its exit code and hint.
func shadowError(op string, sh *awsiot.Shadow, err error) error {
	var se *awsiot.ShadowError
	switch {
	case errors.As(err, &se):
		hint := ""
		switch se.Code {
		case 404:
			hint = "cause: the thing has no such shadow yet\nfix: create it with fennec shadow update --reported '{...}' (or --desired)"
		case 409:
			hint = "cause: the shadow changed since that version\nfix: fennec shadow get, then update with the version it shows"
		case 400:
			hint = "cause: AWS refused the document as malformed\nfix: desired and reported are JSON objects, nested at most 6 levels"
		case 413:
			hint = "cause: the document is larger than the shadow service takes (8 KB)\nfix: split the state over named shadows (--name)"
		case 401, 403:
			hint = "cause: the policy does not allow this shadow operation\nfix: allow iot:Publish on " + sh.Topic(op) + " and iot:Subscribe/iot:Receive on its accepted and rejected topics"
		}
		return &cmdutil.Failure{Code: cmdutil.ExitRefused, Err: err, Step: "shadow", Hint: hint}
	case errors.Is(err, context.DeadlineExceeded):
		return &cmdutil.Failure{Code: cmdutil.ExitTimeout, Err: err, Step: "shadow", Hint: "cause: no accepted or rejected answer in time\nfix: on AWS, the policy must allow iot:Subscribe and iot:Receive on " + sh.Topic(op) + "/accepted and /rejected (a denied subscription on MQTT 3.1.1 closes the connection, on MQTT 5 is refused with 0x87); --wait raises the limit"}
	}
	return cmdutil.Explain(err, nil, "shadow "+op)
}
