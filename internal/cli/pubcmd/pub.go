package pubcmd

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
	"github.com/spf13/cobra"
)

type pubOptions struct {
	conn        cmdutil.ConnFlags
	topic       string
	message     string
	file        string
	lines       bool
	null        bool
	stdin       bool
	qos         int
	retain      bool
	repeat      int
	repeatDelay float64
}

func New(streams cmdutil.IO) *cobra.Command {
	o := &pubOptions{}
	cmd := &cobra.Command{
		Use:   "pub -t TOPIC (-m MSG | -f FILE | -l | -s | -n) [flags]",
		Short: "Publish a message, like mosquitto_pub",
		Long: `Publish one message (or one per line of stdin with -l) and exit.

The flags are those of mosquitto_pub where the meaning is the same: -h host (help is --help),
-p port, -t topic, -m message, -q QoS, -r retain, -u/-P user and password, -i client ID,
--cafile/--cert/--key for TLS and mutual TLS. TLS is used when any TLS flag is given or the
URL (-L) starts with mqtts://. MQTT 5 is the default; -V 311 selects MQTT 3.1.1.

The password is best given in the environment variable FENNEC_PASSWORD: a -P value is
visible to every user of the machine in the process list.`,
		Example: `  # plain MQTT on localhost
  fennec pub -t sensors/kitchen/temp -m 21.5

  # QoS 1, retained, MQTT 3.1.1
  fennec pub -t sensors/kitchen/temp -m 21.5 -q 1 -r -V 311

  # TLS with a client certificate (mutual TLS), as AWS IoT Core wants it
  fennec pub -L mqtts://a1b2c3-ats.iot.us-east-2.amazonaws.com:8883/things/dev1/hello -i dev1 \
      --cafile AmazonRootCA1.pem --cert dev1.pem.crt --key dev1.pem.key -q 1 -m '{"hi":1}'

  # every line of a log as its own message, with a trace of every packet
  tail -f app.log | fennec pub -t logs/app -l -d

  # an MQTT 5 message with properties
  fennec pub -t cmd/reply -m ok -D publish content-type text/plain -D publish user-property k v

  # the settings of a profile (see 'fennec help profiles'), JSON result for scripts
  fennec pub --profile aws -t things/dev1/hello -m hi --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), streams)
		},
	}
	o.conn.Register(cmd)
	fs := cmd.Flags()
	fs.StringVarP(&o.topic, "topic", "t", "", "topic to publish to")
	fs.StringVarP(&o.message, "message", "m", "", "message payload")
	fs.StringVarP(&o.file, "file", "f", "", "send the contents of a file as the message")
	fs.BoolVarP(&o.lines, "stdin-line", "l", false, "read stdin, send each line as a message")
	fs.BoolVarP(&o.null, "null-message", "n", false, "send a zero-length message")
	fs.BoolVarP(&o.stdin, "stdin-file", "s", false, "read stdin to its end and send it as one message")
	fs.IntVarP(&o.qos, "qos", "q", 0, "QoS: 0, 1 or 2")
	cmd.RegisterFlagCompletionFunc("qos", cobra.FixedCompletions([]string{"0", "1", "2"}, cobra.ShellCompDirectiveNoFileComp))
	fs.BoolVarP(&o.retain, "retain", "r", false, "retain the message")
	fs.IntVar(&o.repeat, "repeat", 1, "publish the message this many times")
	fs.Float64Var(&o.repeatDelay, "repeat-delay", 0, "seconds to wait between repeated messages")
	return cmd
}

func (o *pubOptions) run(ctx context.Context, streams cmdutil.IO) (err error) {
	defer func() { err = o.conn.Report(streams, err) }()
	qos := o.qos
	spec, err := o.conn.BuildSpec(streams, &qos)
	if err != nil {
		return err
	}
	topic, err := o.checkTopic()
	if err != nil {
		return err
	}
	if err := o.checkSource(); err != nil {
		return err
	}
	payload, err := o.payload(streams)
	if err != nil {
		return err
	}
	c, err := cmdutil.DialClient(ctx, spec)
	if err != nil {
		return err
	}
	defer func() {
		if derr := cmdutil.Disconnect(ctx, c, spec); err == nil {
			err = derr
		}
	}()
	send := o.sender(ctx, streams, c, spec, topic, qos)
	if o.lines {
		return publishLines(streams, send)
	}
	for i := 0; i < o.repeat; i++ {
		if i > 0 && o.repeatDelay > 0 {
			select {
			case <-time.After(time.Duration(o.repeatDelay * float64(time.Second))):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := send(payload); err != nil {
			return err
		}
	}
	return nil
}

// checkTopic returns the topic to publish to (-t, or the -L URL's), refusing one no broker
// may be sent.
func (o *pubOptions) checkTopic() (string, error) {
	topic := cmp.Or(o.topic, o.conn.Topic)
	if topic == "" {
		return "", cmdutil.UsageErrorf("no topic: give -t TOPIC (or a topic in the -L URL)")
	}
	if strings.ContainsAny(topic, "+#") {
		return "", cmdutil.UsageErrorf("-t %q: a topic to publish to cannot hold the wildcards + or # [MQTT-3.3.2-2]", topic)
	}
	if !utf8.ValidString(topic) {
		return "", cmdutil.UsageErrorf("-t %q: the topic is not valid UTF-8, which MQTT requires of topic names [MQTT-1.5.4-1]", topic)
	}
	if strings.ContainsRune(topic, 0) {
		return "", cmdutil.UsageErrorf("-t %q: a topic cannot hold the character U+0000 [MQTT-1.5.4-2]", topic)
	}
	return topic, nil
}

// checkSource checks that exactly one message source is given, and --repeat.
func (o *pubOptions) checkSource() error {
	sources := 0
	for _, set := range []bool{o.conn.Changed("message") || o.message != "", o.file != "", o.lines, o.null, o.stdin} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return cmdutil.UsageErrorf("give exactly one message source: -m MSG, -f FILE, -l (lines of stdin), -s (all of stdin) or -n (empty)")
	}
	if o.repeat < 1 {
		return cmdutil.UsageErrorf("--repeat %d: at least 1", o.repeat)
	}
	return nil
}

// payload reads the message of -f, -s, -n or -m (-l reads its lines as it publishes).
func (o *pubOptions) payload(streams cmdutil.IO) ([]byte, error) {
	switch {
	case o.file != "":
		payload, err := os.ReadFile(o.file)
		if err != nil {
			return nil, &cmdutil.Failure{Code: cmdutil.ExitError, Err: fmt.Errorf("-f: %w", err), Hint: "fix: check the path and the permissions of the file given with -f"}
		}
		return payload, nil
	case o.stdin:
		payload, err := io.ReadAll(streams.In)
		if err != nil {
			return nil, &cmdutil.Failure{Code: cmdutil.ExitError, Err: fmt.Errorf("reading stdin: %w", err)}
		}
		return payload, nil
	case o.null:
		return []byte{}, nil
	case o.lines:
		return nil, nil
	}
	return []byte(o.message), nil
}

// sender returns the function that publishes one payload and, with --json, prints its result.
func (o *pubOptions) sender(ctx context.Context, streams cmdutil.IO, c cmdutil.MQTTClient, spec *cmdutil.ConnSpec, topic string, qos int) func([]byte) error {
	props := spec.Props.MessageProps("publish")
	return func(p []byte) error {
		m := &cmdutil.Message{Topic: topic, Payload: p, QoS: byte(qos), Retain: o.retain, Props: props}
		start := time.Now()
		if err := c.Publish(ctx, m); err != nil {
			return cmdutil.Explain(err, spec, fmt.Sprintf("MQTT PUBLISH at QoS %d", qos))
		}
		if o.conn.JSONOut {
			obj := map[string]any{"result": "ok", "topic": topic, "qos": qos, "retain": o.retain, "payload_len": len(p),
				"time": start.UTC().Format(time.RFC3339Nano), "elapsed_ms": float64(time.Since(start).Microseconds()) / 1000}
			b, _ := json.Marshal(obj)
			fmt.Fprintf(streams.Out, "%s\n", b)
		}
		return nil
	}
}

// publishLines publishes each line of stdin as a message (-l).
func publishLines(streams cmdutil.IO, send func([]byte) error) error {
	sc := bufio.NewScanner(streams.In)
	sc.Buffer(make([]byte, 64*1024), 256*1024*1024)
	sc.Split(splitLines)
	for sc.Scan() {
		if err := send(append([]byte(nil), sc.Bytes()...)); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return &cmdutil.Failure{Code: cmdutil.ExitError, Err: fmt.Errorf("reading stdin: %w", err)}
	}
	return nil
}

// splitLines splits stdin for -l at '\n' only, as mosquitto_pub does: a '\r' before it is part
// of the payload (bufio.ScanLines would drop it).
func splitLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
