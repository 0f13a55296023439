package democmd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/pki"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

type demoOptions struct {
	conn   cmdutil.ConnFlags
	broker string
	topic  string
	qos    []int
	wait   time.Duration
}

func New(streams cmdutil.IO) *cobra.Command {
	o := &demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo [--broker URL --cafile CA --cert CERT --key KEY]",
		Short: "Run the pub/sub demo: embedded broker, TLS 1.3, mutual TLS, QoS 0/1/2",
		Long: `The MQTT pub/sub demo in one command, with no setup.

With no flags it creates a throwaway PKI (a CA, a server certificate for localhost and a client
certificate), starts the embedded broker on a free loopback port with TLS 1.3 only and a
client certificate required (mutual TLS), connects a client with its certificate, subscribes,
publishes one message at each of QoS 0, 1 and 2, waits until each one has come back, prints a
short trace of the packets and a summary, and exits 0.

With --broker URL (and the certificate flags the broker needs) the same demo runs against any
broker: a local mosquitto, a lab broker, AWS IoT Core. When something fails, it says which step
failed (DNS, TCP, TLS, MQTT), why, and what to change. -d prints the full trace with the
server's certificate chain.`,
		Example: `  # everything local: no broker, no certificates needed
  go run ./cmd/fennec demo

  # against a mosquitto that requires client certificates
  fennec demo --broker mqtts://localhost:8883 --cafile ca.pem --cert client.pem --key client-key.pem

  # against AWS IoT Core (QoS 2 is skipped there: AWS IoT does not support it)
  fennec demo --broker mqtts://a1b2c3-ats.iot.us-east-2.amazonaws.com:8883 -i dev1 \
      --cafile AmazonRootCA1.pem --cert dev1.pem.crt --key dev1.pem.key --topic things/dev1/demo

  # the same with a profile, and a JSON line per step for scripts
  fennec demo --profile aws --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), streams)
		},
	}
	o.conn.Register(cmd)
	fs := cmd.Flags()
	fs.StringVar(&o.broker, "broker", "", "run against this broker instead of the embedded one: mqtt[s]://host[:port]")
	fs.StringVar(&o.topic, "topic", "", "topic prefix for the demo messages (default fennec/demo/<random>)")
	fs.IntSliceVarP(&o.qos, "qos", "q", nil, "QoS levels to demonstrate (default 0,1,2; 0,1 for AWS IoT and for a broker whose CONNACK says Maximum QoS 1)")
	fs.DurationVar(&o.wait, "wait", 10*time.Second, "how long to wait for each message to come back")
	return cmd
}

// demoResult is one message of the demo.
type demoResult struct {
	QoS      int           `json:"qos"`
	Topic    string        `json:"topic"`
	Sent     bool          `json:"sent"`
	Received bool          `json:"received"`
	Ack      time.Duration `json:"-"`
	RTT      time.Duration `json:"-"`
	AckMS    float64       `json:"ack_ms"`
	RTTMS    float64       `json:"round_trip_ms"`
}

func (o *demoOptions) run(ctx context.Context, streams cmdutil.IO) (err error) {
	defer func() { err = o.conn.Report(streams, err) }()
	out := streams.Out
	jsonOut := o.conn.JSONOut
	if jsonOut {
		out = io.Discard
	}
	emit := jsonEmitter(streams, jsonOut)
	if o.broker != "" && o.conn.URL != "" {
		return cmdutil.UsageErrorf("give the broker once: --broker or -L")
	}
	nonce := make([]byte, 4)
	rand.Read(nonce)
	topic, err := o.demoTopic(hex.EncodeToString(nonce))
	if err != nil {
		return err
	}

	fmt.Fprintln(out, "fennec demo: MQTT publish and subscribe, end to end")
	fmt.Fprintln(out)
	spec, stop, err := o.openBroker(ctx, streams, out, emit)
	if err != nil {
		return err
	}
	if stop != nil {
		defer stop()
	}
	if spec.ClientID == "" {
		spec.ClientID = "fennec-demo-" + hex.EncodeToString(nonce)
	}
	levels, err := o.levels(out, spec)
	if err != nil {
		return err
	}
	spec.Trace = o.tracer(streams, out)
	pubcomps := countPubcomps(spec)
	c, err := o.connect(ctx, out, spec, emit)
	if err != nil {
		return err
	}
	disconnected := false
	disconnectOnce := func() error {
		if disconnected {
			return nil
		}
		disconnected = true
		return cmdutil.Disconnect(ctx, c, spec)
	}
	defer func() {
		if derr := disconnectOnce(); derr != nil && err == nil {
			err = derr
		}
	}()
	levels = brokerLevels(out, c, levels)
	arrivals, err := subscribeDemo(ctx, c, spec, topic+"/#", slices.Max(levels), emit)
	if err != nil {
		return err
	}

	results, err := o.exchanges(ctx, out, c, spec, levels, topic, hex.EncodeToString(nonce), arrivals, emit)
	if err != nil {
		return err
	}
	// A received QoS 2 message is delivered on PUBLISH; wait for its PUBREL/PUBCOMP exchange to
	// finish before disconnecting, so the trace shows the whole flow.
	if slices.Contains(levels, 2) {
		select {
		case <-pubcomps:
		case <-time.After(o.wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	tlsDesc := transportText(c, spec)
	if err := disconnectOnce(); err != nil {
		return err
	}
	o.summary(out, results, levels)
	emit(map[string]any{"step": "summary", "ok": true, "messages": len(results), "received": len(results), "transport": tlsDesc})
	fmt.Fprintf(out, "\nresult: OK — %d of %d messages received over %s\n", len(results), len(levels), tlsDesc)
	return nil
}

// jsonEmitter prints each step of the demo as a JSON line with --json, and nothing without.
func jsonEmitter(streams cmdutil.IO, jsonOut bool) func(map[string]any) {
	return func(obj map[string]any) {
		if jsonOut {
			b, _ := json.Marshal(obj)
			fmt.Fprintf(streams.Out, "%s\n", b)
		}
	}
}

// connect connects the demo's client and says how long it took.
func (o *demoOptions) connect(ctx context.Context, out io.Writer, spec *cmdutil.ConnSpec, emit func(map[string]any)) (cmdutil.MQTTClient, error) {
	fmt.Fprintf(out, "  client     %s connects as %q\n", spec.Server, spec.ClientID)
	start := time.Now()
	c, err := cmdutil.DialClient(ctx, spec)
	if err != nil {
		emit(map[string]any{"step": "connect", "ok": false})
		fmt.Fprintln(out, "\nresult: FAILED at connect (details on stderr)")
		return nil, err
	}
	connectTime := time.Since(start)
	emit(map[string]any{"step": "connect", "ok": true, "ms": ms(connectTime)})
	if spec.Trace == nil && !o.conn.JSONOut {
		// keep a readable line even without a trace
		fmt.Fprintf(out, "  connected  in %s\n", connectTime.Round(time.Millisecond))
	}
	return c, nil
}

// demoTopic is the topic prefix of the demo's messages: --topic, or one of its own.
func (o *demoOptions) demoTopic(nonce string) (string, error) {
	topic := o.topic
	if topic == "" {
		topic = "fennec/demo/" + nonce
	}
	if err := cmdutil.ValidFilter(topic); err != nil || strings.ContainsAny(topic, "+#") {
		return "", cmdutil.UsageErrorf("--topic %q: a plain topic prefix without wildcards, e.g. things/dev1/demo", topic)
	}
	return topic, nil
}

// countPubcomps signals each PUBCOMP the client sends, so that the demo ends after its QoS 2
// exchanges complete.
func countPubcomps(spec *cmdutil.ConnSpec) <-chan struct{} {
	pubcomps := make(chan struct{}, 8)
	spec.OnPacket = func(outbound bool, typ byte) {
		if outbound && typ == byte(packet.PUBCOMP) {
			select {
			case pubcomps <- struct{}{}:
			default:
			}
		}
	}
	return pubcomps
}

// exchanges sends one message per QoS level and waits for each to come back; the first that
// fails, or does not come back, ends the demo with the summary so far and its explanation.
func (o *demoOptions) exchanges(ctx context.Context, out io.Writer, c cmdutil.MQTTClient, spec *cmdutil.ConnSpec, levels []int, topic, nonce string, arrivals <-chan arrival, emit func(map[string]any)) ([]demoResult, error) {
	var results []demoResult
	for _, q := range levels {
		r, err := o.exchange(ctx, c, q, topic, nonce, arrivals)
		if r.Sent {
			r.AckMS, r.RTTMS = ms(r.Ack), ms(r.RTT)
		}
		results = append(results, r)
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return nil, err
			}
			o.summary(out, results, levels)
			return nil, cmdutil.Explain(err, spec, fmt.Sprintf("MQTT PUBLISH at QoS %d", q))
		}
		emit(map[string]any{"step": "message", "qos": q, "topic": r.Topic, "sent": r.Sent, "received": r.Received, "ack_ms": r.AckMS, "round_trip_ms": r.RTTMS})
		if !r.Received {
			o.summary(out, results, levels)
			return nil, o.notReceived(spec, r, topic+"/#")
		}
	}
	return results, nil
}

// levels are the QoS levels to show: -q, or 0, 1 and 2; AWS IoT Core has no QoS 2.
func (o *demoOptions) levels(out io.Writer, spec *cmdutil.ConnSpec) ([]int, error) {
	levels := o.qos
	if len(levels) == 0 {
		levels = []int{0, 1, 2}
	}
	for _, q := range levels {
		if q < 0 || q > 2 {
			return nil, cmdutil.UsageErrorf("-q %d: QoS is 0, 1 or 2", q)
		}
	}
	if cmdutil.IsAWS(spec) {
		levels = capLevels(out, levels, 1, "AWS IoT Core does not support QoS 2")
	}
	return levels, nil
}

// tracer shows the packets: short lines on out, every detail on stderr with -d, none with --json.
func (o *demoOptions) tracer(streams cmdutil.IO, out io.Writer) *cmdutil.Tracer {
	switch {
	case o.conn.Debug:
		return cmdutil.NewTracer(streams.Err)
	case o.conn.JSONOut:
		return nil
	}
	tr := cmdutil.NewTracer(out)
	tr.Short = true
	return tr
}

// transportText says how the connection went: plain TCP, or TLS with its version and whether
// the broker asked for and got our certificate.
func transportText(c cmdutil.MQTTClient, spec *cmdutil.ConnSpec) string {
	st := c.TLSState()
	if st == nil {
		return "plain TCP"
	}
	requested, sent, _ := spec.TLSFacts.Snapshot()
	s := "TLS " + cmdutil.TLSVersionName(st.Version)
	if requested && sent {
		s += " with mutual TLS"
	}
	return s
}

// brokerLevels drops the levels above the Maximum QoS an MQTT 5 broker's CONNACK may give
// [MQTT-3.2.2-9]: a QoS above it would be refused, so the demo shows what the broker supports
// and says so.
func brokerLevels(out io.Writer, c cmdutil.MQTTClient, levels []int) []int {
	if fc, ok := c.(*cmdutil.FennecClient); ok {
		if _, ack := fc.Client.ConnectionState(); ack != nil && ack.Props.Has(packet.PropMaximumQoS) {
			levels = capLevels(out, levels, int(ack.Props.MaximumQoS), fmt.Sprintf("the broker's CONNACK says Maximum QoS %d", ack.Props.MaximumQoS))
		}
	}
	return levels
}

// subscribeDemo subscribes to filter at qos; the messages arrive on the channel it returns.
func subscribeDemo(ctx context.Context, c cmdutil.MQTTClient, spec *cmdutil.ConnSpec, filter string, qos int, emit func(map[string]any)) (<-chan arrival, error) {
	arrivals := make(chan arrival, 16)
	subs := []cmdutil.Subscription{{Filter: filter, QoS: byte(qos)}}
	granted, err := c.Subscribe(ctx, func(m *cmdutil.Message) {
		select {
		case arrivals <- arrival{m, time.Now()}:
		case <-ctx.Done():
		}
	}, subs)
	if err != nil {
		return nil, cmdutil.Explain(err, spec, "MQTT SUBSCRIBE")
	}
	if err := cmdutil.RefusedSubscription(spec, subs, granted); err != nil {
		return nil, err
	}
	emit(map[string]any{"step": "subscribe", "filter": filter, "granted_qos": granted})
	return arrivals, nil
}

// arrival is a message our subscription received, and when.
type arrival struct {
	m  *cmdutil.Message
	at time.Time
}

// exchange publishes one demo message at QoS q and waits up to --wait for it to come back
// through the subscription. An error is the publish's, or the context's.
func (o *demoOptions) exchange(ctx context.Context, c cmdutil.MQTTClient, q int, topic, nonce string, arrivals <-chan arrival) (demoResult, error) {
	r := demoResult{QoS: q, Topic: fmt.Sprintf("%s/qos%d", topic, q)}
	payload := fmt.Sprintf("hello from fennec at QoS %d (%s)", q, nonce)
	sent := time.Now()
	if err := c.Publish(ctx, &cmdutil.Message{Topic: r.Topic, Payload: []byte(payload), QoS: byte(q)}); err != nil {
		return r, err
	}
	r.Sent, r.Ack = true, time.Since(sent)
	timer := time.NewTimer(o.wait)
	defer timer.Stop()
	for {
		select {
		case a := <-arrivals:
			if a.m.Topic == r.Topic && string(a.m.Payload) == payload {
				r.Received, r.RTT = true, a.at.Sub(sent)
				return r, nil
			}
		case <-timer.C:
			return r, nil
		case <-ctx.Done():
			return r, ctx.Err()
		}
	}
}

// notReceived explains a message that was accepted but did not come back.
func (o *demoOptions) notReceived(spec *cmdutil.ConnSpec, r demoResult, filter string) error {
	hint := fmt.Sprintf("step: MQTT — the QoS %d message to %q was accepted but did not come back within %s\ncause: the broker did not deliver it to our own subscription to %q", r.QoS, r.Topic, o.wait, filter)
	if cmdutil.IsAWS(spec) {
		hint += "\nfix: the AWS IoT policy needs iot:Receive on arn:aws:iot:REGION:ACCOUNT:topic/" + r.Topic + " as well as iot:Publish and iot:Subscribe"
	} else {
		hint += "\nfix: check the broker's ACL for receive/read rights on the topic; run with -d to see every packet"
	}
	return &cmdutil.Failure{Code: cmdutil.ExitTimeout, Step: "mqtt", Err: fmt.Errorf("demo: message at QoS %d not received", r.QoS), Hint: hint}
}

// openBroker starts the embedded broker, or describes the external one the flags name, and
// returns the connection to make; stop, when not nil, stops the embedded broker.
func (o *demoOptions) openBroker(ctx context.Context, streams cmdutil.IO, out io.Writer, emit func(map[string]any)) (spec *cmdutil.ConnSpec, stop func(), err error) {
	external := o.broker != "" || o.conn.URL != "" || o.conn.Changed("host") || o.conn.Changed("port") || o.conn.Profile != ""
	if o.broker != "" {
		o.conn.URL = o.broker
	}
	if external {
		spec, err = o.conn.BuildSpec(streams, nil)
		if err != nil {
			return nil, nil, err
		}
		fmt.Fprintf(out, "  broker     %s (MQTT %s", spec.Server, cmdutil.VersionName(spec.Version))
		switch {
		case spec.TLS == nil:
			fmt.Fprint(out, ", plain TCP: not encrypted")
		case spec.ClientCert:
			fmt.Fprint(out, ", TLS with client certificate")
		default:
			fmt.Fprint(out, ", TLS without client certificate")
		}
		fmt.Fprintln(out, ")")
		emit(map[string]any{"step": "broker", "server": spec.Server, "embedded": false})
		return spec, nil, nil
	}
	// Only the client flags that make sense against the embedded broker apply.
	o.conn.URL, o.conn.NoProfile = "", true
	spec, err = o.conn.BuildSpec(streams, nil)
	if err != nil {
		return nil, nil, err
	}
	spec, info, stop, err := startDemoBroker(ctx, spec)
	if err != nil {
		return nil, nil, &cmdutil.Failure{Code: cmdutil.ExitError, Err: fmt.Errorf("starting the embedded broker: %w", err)}
	}
	fmt.Fprint(out, info)
	emit(map[string]any{"step": "broker", "server": spec.Server, "embedded": true, "tls": "1.3", "client_certificate": "required"})
	return spec, stop, nil
}

func (o *demoOptions) summary(out io.Writer, results []demoResult, levels []int) {
	fmt.Fprintln(out, "\n  QoS  topic                               sent  received  ack        round trip")
	for _, r := range results {
		ack, rtt := "-", "-"
		if r.Sent && r.QoS > 0 {
			ack = r.Ack.Round(10 * time.Microsecond).String()
		} else if r.Sent {
			ack = "(none)"
		}
		if r.Received {
			rtt = r.RTT.Round(10 * time.Microsecond).String()
		}
		fmt.Fprintf(out, "  %-3d  %-34s  %-4s  %-8s  %-9s  %s\n", r.QoS, r.Topic, yesNo(r.Sent), yesNo(r.Received), ack, rtt)
	}
	for _, q := range levels[len(results):] {
		fmt.Fprintf(out, "  %-3d  %-34s  %-4s  %-8s  %-9s  %s\n", q, "", "-", "-", "-", "-")
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// demoPKI creates the throwaway PKI and the client's TLS configuration for the embedded broker.
func demoPKI(spec *cmdutil.ConnSpec) (*devpki.PKI, *tls.Config, error) {
	p, err := devpki.Generate(devpki.Options{Clients: []string{"fennec-demo-client"}})
	if err != nil {
		return nil, nil, err
	}
	cl := p.Client()
	facts := &cmdutil.TLSFacts{Rec: &pki.HandshakeRecorder{}}
	cfg, err := pki.ClientConfig(pki.ClientOptions{
		CAs:        []pki.Source{pki.BytesSource(p.CA.CertPEM, "demo CA")},
		Cert:       pki.BytesSource(cl.CertPEM, "demo client certificate"),
		Key:        pki.BytesSource(cl.KeyPEM, "demo client key"),
		ServerName: "localhost",
		MinVersion: tls.VersionTLS13,
		Recorder:   facts.Rec,
	})
	if err != nil {
		return nil, nil, err
	}
	spec.TLSFacts = facts
	spec.ClientCert = true
	return p, cfg, nil
}

// capLevels drops the QoS levels above limit, with a notice naming why; when none is left, the
// demo runs at limit.
func capLevels(out io.Writer, levels []int, limit int, why string) []int {
	var kept, dropped []string
	var l []int
	for _, q := range levels {
		if q > limit {
			dropped = append(dropped, fmt.Sprint(q))
			continue
		}
		l = append(l, q)
		kept = append(kept, fmt.Sprint(q))
	}
	if len(dropped) == 0 {
		return levels
	}
	if len(l) == 0 {
		l, kept = []int{limit}, []string{fmt.Sprint(limit)}
	}
	fmt.Fprintf(out, "  note       %s: QoS %s skipped, demonstrating QoS %s\n", why, strings.Join(dropped, ","), strings.Join(kept, ","))
	return l
}
