package subcmd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
	"github.com/fennec-mqtt/fennec/topic"
)

type subOptions struct {
	conn           cmdutil.ConnFlags
	topics         []string
	filterOut      []string
	unsubscribe    []string
	qos            int
	count          int
	timeout        int
	verbose        bool
	format         string
	noEOL          bool
	noRetained     bool
	retainedOnly   bool
	removeRetained bool
	exitAfterSub   bool
	asPublished    bool
}

func New(streams cmdutil.IO) *cobra.Command {
	o := &subOptions{}
	cmd := &cobra.Command{
		Use:   "sub -t FILTER... [flags]",
		Short: "Subscribe and print messages, like mosquitto_sub",
		Long: `Subscribe to one or more topic filters and print every message that arrives, until
interrupted, until -C messages have arrived, or until -W seconds have passed.

The flags are those of mosquitto_sub where the meaning is the same: -h host (help is --help),
-p port, -t filter (repeatable), -q QoS, -v (topic and payload), -F format (see 'fennec help
format'), -C count, -W timeout, -R (skip retained), -T (filter out), -N (no newline),
--cafile/--cert/--key for TLS and mutual TLS. --json prints one JSON object per message.

Exit codes: 0 when -C messages arrived (or the command was told to stop by -W without -C);
5 when -W ran out before -C messages arrived; 130 when interrupted. See 'fennec help exit-codes'.`,
		Example: `  # everything under sensors/, topic and payload
  fennec sub -t 'sensors/#' -v

  # wait at most 10 s for one message, for a script
  fennec sub -t 'jobs/dev1/next' -C 1 -W 10 --json

  # mutual TLS against a local broker, with a trace of every packet and the TLS facts
  fennec sub -h localhost -p 8883 --cafile ca.pem --cert client.pem --key client-key.pem -t '#' -d

  # AWS IoT Core, as a URL (user part unused there)
  fennec sub -L mqtts://a1b2c3-ats.iot.us-east-2.amazonaws.com:8883/things/dev1/# -i dev1 \
      --cafile AmazonRootCA1.pem --cert dev1.pem.crt --key dev1.pem.key -q 1

  # custom output: time, topic padded to 30, payload length
  fennec sub -t 'sensors/#' -F '@H:@M:@S %-30t %l bytes'

  # clear every retained message under test/ (retained ones arrive first, then stop)
  fennec sub -t 'test/#' --remove-retained --retained-only`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), streams)
		},
	}
	o.conn.Register(cmd)
	fs := cmd.Flags()
	fs.StringArrayVarP(&o.topics, "topic", "t", nil, "topic filter to subscribe to (repeatable)")
	fs.StringArrayVarP(&o.filterOut, "filter-out", "T", nil, "do not print messages whose topic matches this filter (repeatable)")
	fs.StringArrayVarP(&o.unsubscribe, "unsubscribe", "U", nil, "unsubscribe from this filter after connecting (repeatable; for persistent sessions)")
	fs.IntVarP(&o.qos, "qos", "q", 0, "QoS of the subscriptions: 0, 1 or 2")
	cmd.RegisterFlagCompletionFunc("qos", cobra.FixedCompletions([]string{"0", "1", "2"}, cobra.ShellCompDirectiveNoFileComp))
	fs.IntVarP(&o.count, "count", "C", 0, "exit after this many messages")
	fs.IntVarP(&o.timeout, "timeout", "W", 0, "exit after this many seconds (from the moment the connection is up)")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "print the topic before the payload")
	fs.StringVarP(&o.format, "format", "F", "", "output format (see 'fennec help format'); overrides -v, as in mosquitto_sub")
	fs.BoolVarP(&o.noEOL, "no-eol", "N", false, "do not print a newline after each message")
	fs.BoolVarP(&o.noRetained, "no-retained", "R", false, "do not print retained (stale) messages")
	fs.BoolVar(&o.retainedOnly, "retained-only", false, "print only retained messages; exit at the first non-retained one")
	fs.BoolVar(&o.removeRetained, "remove-retained", false, "clear every retained message received (publish an empty retained message)")
	fs.BoolVarP(&o.exitAfterSub, "exit-after-sub", "E", false, "exit once the subscriptions are acknowledged")
	fs.BoolVar(&o.asPublished, "retain-as-published", false, "MQTT 5: keep the retain flag as the publisher set it (otherwise it marks only stale messages)")
	return cmd
}

func (o *subOptions) run(ctx context.Context, streams cmdutil.IO) (err error) {
	defer func() { err = o.conn.Report(streams, err) }()
	qos := o.qos
	spec, err := o.conn.BuildSpec(streams, &qos)
	if err != nil {
		return err
	}
	topics, err := o.check(spec)
	if err != nil {
		return err
	}
	fatal := o.reconnectPolicy(streams, spec)
	// The handler hands each message to this goroutine; a full channel holds the client back,
	// which holds the broker back: back-pressure, not an unbounded queue.
	msgs := make(chan *cmdutil.Message, 64)
	done := make(chan struct{})
	handler := func(m *cmdutil.Message) {
		select {
		case msgs <- m:
		case <-done:
		}
	}
	// A persistent session (-c) delivers what was queued for it right after CONNACK, before
	// any SUBSCRIBE of this run: those messages go to the same handler.
	spec.OnMessage = handler
	c, err := cmdutil.DialClient(ctx, spec)
	if err != nil {
		return err
	}
	defer func() {
		if derr := cmdutil.Disconnect(ctx, c, spec); err == nil {
			err = derr
		}
	}()
	defer close(done) // before disconnecting: a handler blocked on msgs lets go

	w := o.newRunWindow(ctx, spec, fatal)
	defer w.stop()
	wctx := w.wctx
	if len(o.unsubscribe) > 0 {
		if err := c.Unsubscribe(wctx, o.unsubscribe); err != nil {
			return w.ended(err, "MQTT UNSUBSCRIBE")
		}
	}
	if len(topics) > 0 {
		if err := o.subscribe(wctx, streams, c, spec, topics, qos, handler); err != nil {
			if r, ok := err.(explainedRefusal); ok {
				return r.error
			}
			return w.ended(err, "MQTT SUBSCRIBE")
		}
	}
	if o.exitAfterSub {
		return nil
	}
	for {
		select {
		case <-wctx.Done():
			return w.ended(wctx.Err(), "waiting for messages")
		case m := <-msgs:
			stop, err := o.handle(wctx, streams, c, m, &w.received)
			if err != nil {
				return w.ended(err, "clearing a retained message")
			}
			if stop {
				return nil
			}
		}
	}
}

// reconnectPolicy makes the client stay subscribed across a lost connection, like
// mosquitto_sub: it reconnects and resubscribes (the first connection attempt still fails the
// command). A reconnect the broker refuses for good (credentials, authorization, client ID,
// protocol version) arrives on the returned channel, to end the command with the refusal's
// exit code; other failures are retried.
func (o *subOptions) reconnectPolicy(streams cmdutil.IO, spec *cmdutil.ConnSpec) <-chan error {
	spec.Reconnect = true
	spec.OnLost = func(err error) {
		if !o.conn.Quiet {
			fmt.Fprintf(streams.Err, "fennec: %s (reconnecting)\n", cmdutil.LostText(err))
		}
	}
	fatal := make(chan error, 1)
	spec.OnConnectError = func(err error) {
		if fennec.Permanent(err) {
			select {
			case fatal <- err:
			default:
			}
		}
	}
	return fatal
}

// runWindow is the span of one run. -W bounds all of it, also while the client waits to
// reconnect for its SUBSCRIBE, and a permanent refusal on a reconnect ends it: both cancel
// wctx, which every wait uses.
type runWindow struct {
	ctx      context.Context // the command's
	wctx     context.Context
	cancel   context.CancelCauseFunc
	timer    *time.Timer
	o        *subOptions
	spec     *cmdutil.ConnSpec
	received int // messages printed
}

var errTimeout = errors.New("-W ran out")

func (o *subOptions) newRunWindow(ctx context.Context, spec *cmdutil.ConnSpec, fatal <-chan error) *runWindow {
	w := &runWindow{ctx: ctx, o: o, spec: spec}
	w.wctx, w.cancel = context.WithCancelCause(ctx)
	if o.timeout > 0 {
		w.timer = time.AfterFunc(time.Duration(o.timeout)*time.Second, func() { w.cancel(errTimeout) })
	}
	go func() {
		select {
		case err := <-fatal:
			w.cancel(err)
		case <-w.wctx.Done():
		}
	}()
	return w
}

func (w *runWindow) stop() {
	if w.timer != nil {
		w.timer.Stop()
	}
	w.cancel(nil)
}

// ended turns the end of wctx, or err of the step during, into the command's result.
func (w *runWindow) ended(err error, during string) error {
	o := w.o
	cause := context.Cause(w.wctx)
	switch {
	case w.ctx.Err() != nil:
		return w.ctx.Err()
	case cause == errTimeout:
		// mosquitto_sub ends a -W with "Timed out" and exit status 27, -C or not
		if o.count > 0 {
			return &cmdutil.Failure{Code: cmdutil.ExitSubTimeout, Err: fmt.Errorf("timed out after %d s with %d of %d messages", o.timeout, w.received, o.count),
				Hint: "cause: fewer messages arrived than -C asked for before -W ran out\nfix: check that something publishes to the filter (and that the broker lets this client receive it); raise -W"}
		}
		return &cmdutil.Failure{Code: cmdutil.ExitSubTimeout, Err: fmt.Errorf("timed out after %d s (%d messages)", o.timeout, w.received)}
	case cause != nil: // a permanent refusal on a reconnect
		return cmdutil.Explain(cause, w.spec, "reconnecting to "+w.spec.Server)
	}
	return cmdutil.Explain(err, w.spec, during)
}

// check validates the options against the connection and returns the filters to subscribe to.
func (o *subOptions) check(spec *cmdutil.ConnSpec) ([]string, error) {
	topics := o.topics
	if len(topics) == 0 && o.conn.Topic != "" {
		topics = []string{o.conn.Topic}
	}
	if len(topics) == 0 && len(o.unsubscribe) == 0 {
		return nil, cmdutil.UsageErrorf("no topic: give -t FILTER (or a topic in the -L URL)")
	}
	for _, t := range append(append(append([]string{}, topics...), o.filterOut...), o.unsubscribe...) {
		if err := cmdutil.ValidFilter(t); err != nil {
			return nil, cmdutil.UsageErrorf("%v", err)
		}
	}
	if o.count < 0 || o.timeout < 0 {
		return nil, cmdutil.UsageErrorf("-C and -W take positive numbers")
	}
	if o.format != "" && o.conn.JSONOut {
		return nil, cmdutil.UsageErrorf("-F and --json are two output formats: give one")
	}
	if o.format != "" {
		if err := cmdutil.CheckFormat(o.format); err != nil {
			return nil, cmdutil.UsageError{Err: err}
		}
	}
	if o.asPublished && spec.Version != 5 {
		return nil, cmdutil.UsageErrorf("--retain-as-published is an MQTT 5 subscription option; use -V 5")
	}
	if o.noRetained && o.retainedOnly {
		return nil, cmdutil.UsageErrorf("-R (skip retained) and --retained-only exclude each other")
	}
	return topics, nil
}

// subscribe subscribes to topics; a refusal is explained here, other errors are the caller's.
func (o *subOptions) subscribe(ctx context.Context, streams cmdutil.IO, c cmdutil.MQTTClient, spec *cmdutil.ConnSpec, topics []string, qos int, handler func(*cmdutil.Message)) error {
	subs := make([]cmdutil.Subscription, len(topics))
	for i, t := range topics {
		subs[i] = cmdutil.Subscription{Filter: t, QoS: byte(qos), RetainAsPublished: o.asPublished}
	}
	granted, err := c.Subscribe(ctx, handler, subs)
	if err != nil {
		return err
	}
	if err := cmdutil.RefusedSubscription(spec, subs, granted); err != nil {
		return explainedRefusal{err}
	}
	for i, g := range granted {
		if i < len(subs) && g < subs[i].QoS && !o.conn.Quiet && !o.conn.JSONOut {
			fmt.Fprintf(streams.Err, "fennec: note: the broker granted QoS %d for %q (asked for %d)\n", g, subs[i].Filter, subs[i].QoS)
		}
	}
	return nil
}

// explainedRefusal is a refused subscription, already explained: the caller returns it as is.
type explainedRefusal struct{ error }

// handle prints one message as the options say, counting it in received; stop ends the run
// (-C reached, or --retained-only past the retained messages). An error is the publish that
// clears a retained message (--remove-retained).
func (o *subOptions) handle(ctx context.Context, streams cmdutil.IO, c cmdutil.MQTTClient, m *cmdutil.Message, received *int) (stop bool, err error) {
	if o.retainedOnly && !m.Retain {
		return true, nil
	}
	if matchesAny(o.filterOut, m.Topic) {
		return false, nil
	}
	if o.removeRetained && m.Retain {
		// QoS 1, so that the broker has it before we disconnect
		clear := &cmdutil.Message{Topic: m.Topic, Payload: nil, QoS: 1, Retain: true}
		if err := c.Publish(ctx, clear); err != nil {
			return false, err
		}
	}
	if o.noRetained && m.Retain {
		return false, nil
	}
	if err := o.print(streams, m); err != nil {
		fmt.Fprintf(streams.Err, "fennec: %v\n", err)
	} else {
		*received++
	}
	return o.count > 0 && *received >= o.count, nil
}

func (o *subOptions) print(streams cmdutil.IO, m *cmdutil.Message) error {
	var out []byte
	switch {
	case o.conn.JSONOut:
		out = cmdutil.MessageJSON(m)
	case o.format != "":
		s, err := cmdutil.FormatMessage(o.format, m)
		if err != nil {
			return err
		}
		out = []byte(s)
	case len(m.Payload) == 0:
		// as mosquitto_sub: "TOPIC (null)" with -v (not with -N), else nothing at all
		if !o.verbose || o.noEOL {
			return nil
		}
		out = []byte(m.Topic + " (null)")
	case o.verbose:
		out = append([]byte(m.Topic+" "), m.Payload...)
	default:
		out = m.Payload
	}
	if !o.noEOL || o.conn.JSONOut {
		out = append(out, '\n')
	}
	_, err := streams.Out.Write(out)
	return err
}

// matchTopic reports whether the topic name matches filter, $-topics included [MQTT-4.7.2-1].
func matchTopic(filter, name string) bool { return topic.Match(filter, name) }

func matchesAny(filters []string, topic string) bool {
	for _, f := range filters {
		if matchTopic(f, topic) {
			return true
		}
	}
	return false
}
