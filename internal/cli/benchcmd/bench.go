package benchcmd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/fennec-mqtt/fennec/bench"
	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
	"github.com/fennec-mqtt/fennec/packet"
)

// benchOptions are the flags of the bench commands beside the connection flags.
type benchOptions struct {
	mode                      bench.Mode
	clients, subscribers      int
	connectRate               float64
	connectParallel           int
	rate                      float64
	qos, size, count          int
	inflight                  int
	topic, filter             string
	duration, drain, interval time.Duration
	report, progress          string
}

func New(streams cmdutil.IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a broker and this client: throughput, latency, loss, connections and memory",
		Long: `bench loads a broker the way emqtt-bench does and reports what it measured:

  pub     publishers send as fast as the in-flight window allows, or at --rate each
  sub     subscribers count what publishers elsewhere send (a fennec bench pub, say)
  pubsub  both in this process: loss, duplicates, reordering and end-to-end latency
  conn    idle connections held with keep-alive: connects per second, memory per connection

Every payload starts with a 28-byte header (run, publisher, sequence number, send time), so
subscribers count loss, duplicates and reordering and measure latency. Results: messages and
bytes per second, latency percentiles (p50, p90, p99, p99.9, max) from an HDR histogram, connect
time, CPU and memory of this process; --json prints them as one object, --report FILE.html
writes a page with a latency histogram and a throughput chart that opens offline.

On a terminal, progress is drawn as bars on stderr; otherwise one line per --interval.
The connection flags are those of pub and sub (TLS, mutual TLS, -V, -u/-P, -k).`,
		Example: `  fennec bench pubsub -n 4 --subscribers 2 -q 1 --duration 10s
  fennec bench pub -L mqtts://broker.local:8883 --cafile ca.pem -n 10 --rate 1000 -s 256
  fennec bench conn -h broker.local -p 8883 --cafile ca.pem --cert dev.pem --key dev-key.pem \
      -n 10000 --connect-rate 500 --duration 60s --report conn.html`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newBenchModeCmd(streams, bench.Pub, "Publish and measure the rate and acknowledgement latency"),
		newBenchModeCmd(streams, bench.Sub, "Subscribe and count what arrives from publishers elsewhere"),
		newBenchModeCmd(streams, bench.PubSub, "Publish and subscribe in one process: loss, order and end-to-end latency"),
		newBenchModeCmd(streams, bench.Conn, "Hold idle connections: connect rate and memory per connection"))
	return cmd
}

func newBenchModeCmd(streams cmdutil.IO, mode bench.Mode, short string) *cobra.Command {
	var f cmdutil.ConnFlags
	o := benchOptions{mode: mode}
	examples := map[bench.Mode]string{
		bench.Pub: `  fennec bench pub -h broker.local -n 10 -q 1 --duration 30s
  fennec bench pub -L mqtts://broker.local:8883 --cafile ca.pem -n 100 --rate 10 -s 512 --json`,
		bench.Sub: `  fennec bench sub -h broker.local -q 1 -C 100000      # while a 'fennec bench pub' runs elsewhere
  fennec bench sub -h broker.local -n 5 --filter 'fennec/bench/#' --duration 60s`,
		bench.PubSub: `  fennec bench pubsub -n 4 --subscribers 2 -q 1 --duration 10s
  fennec bench pubsub -h broker.local -q 2 -C 10000 --report qos2.html`,
		bench.Conn: `  fennec bench conn -h broker.local -n 1000 --connect-rate 200 --duration 60s
  fennec bench conn -h broker.local -p 8883 --cafile ca.pem --cert dev.pem --key dev-key.pem -n 10000 --report conn.html`,
	}
	cmd := &cobra.Command{
		Use:     string(mode) + " [URL]",
		Short:   short,
		Example: examples[mode],
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if f.URL != "" {
					return cmdutil.UsageErrorf("give the broker either as an argument or with -L, not both")
				}
				f.URL = args[0]
				if !strings.Contains(f.URL, "://") {
					f.URL = "mqtt://" + f.URL
				}
			}
			return runBench(cmd.Context(), streams, &f, &o)
		},
	}
	f.Register(cmd)
	fs := cmd.Flags()
	what := map[bench.Mode]string{bench.Pub: "publishers (default 1)", bench.Sub: "subscribers (default 1)",
		bench.PubSub: "publishers (default 1)", bench.Conn: "connections (default 100)"}[mode]
	fs.IntVarP(&o.clients, "clients", "n", 0, "number of "+what)
	if mode == bench.PubSub {
		fs.IntVar(&o.subscribers, "subscribers", 0, "number of subscribers (default 1); each receives every message")
	}
	fs.Float64Var(&o.connectRate, "connect-rate", 0, "new connections per second (0: as fast as they complete, --connect-parallel at a time)")
	fs.IntVar(&o.connectParallel, "connect-parallel", 32, "connections in progress at once when --connect-rate is 0")
	fs.DurationVar(&o.duration, "duration", 0, "how long to measure (default 10s unless --count is given)")
	fs.DurationVar(&o.interval, "interval", time.Second, "progress and throughput sample interval")
	fs.StringVar(&o.report, "report", "", "write an HTML report with a latency histogram and a throughput chart to `FILE`")
	fs.StringVar(&o.progress, "progress", "auto", "progress on stderr: auto (bars on a terminal, else lines), bars, lines or none")
	if mode != bench.Conn {
		fs.IntVarP(&o.qos, "qos", "q", 0, "QoS of publications and subscriptions: 0, 1 or 2")
		fs.StringVarP(&o.topic, "topic", "t", "", "topic; %i is the publisher's index (default fennec/bench/%i)")
		fs.StringVar(&o.filter, "filter", "", "subscription filter; %i is the subscriber's index (default: the topic with %i as +)")
		fs.IntVarP(&o.count, "count", "C", 0, "messages per publisher (pub, pubsub) or received in all (sub), instead of --duration")
	}
	if mode == bench.Pub || mode == bench.PubSub {
		fs.Float64VarP(&o.rate, "rate", "r", 0, "messages per second per publisher (0: as fast as the in-flight window allows)")
		fs.IntVarP(&o.size, "size", "s", 64, fmt.Sprintf("payload size in bytes (at least %d: the header)", bench.HeaderSize))
		fs.IntVar(&o.inflight, "inflight", 100, "publishes of one publisher outstanding at once (QoS 1 and 2: also the client's in-flight limit; QoS 2 over MQTT 3.1.1 stays at most 20, the client's QoS 2 window)")
	}
	if mode == bench.PubSub {
		fs.DurationVar(&o.drain, "drain", 5*time.Second, "after publishing, wait this long at most for the last messages")
	}
	return cmd
}

// benchConfig turns the flags into a bench configuration.
func benchConfig(spec *cmdutil.ConnSpec, f *cmdutil.ConnFlags, o *benchOptions) (bench.Config, error) {
	if o.qos < 0 || o.qos > 2 {
		return bench.Config{}, cmdutil.UsageErrorf("-q %d: QoS is 0, 1 or 2", o.qos)
	}
	if o.clients < 0 || o.subscribers < 0 || o.count < 0 || o.rate < 0 || o.connectRate < 0 || o.inflight < 0 {
		return bench.Config{}, cmdutil.UsageErrorf("clients, counts and rates cannot be negative")
	}
	if o.size != 0 && o.size < bench.HeaderSize {
		return bench.Config{}, cmdutil.UsageErrorf("-s %d: the payload holds a %d-byte header (sequence number and send time); use -s %d or more", o.size, bench.HeaderSize, bench.HeaderSize)
	}
	switch o.progress {
	case "auto", "bars", "lines", "none":
	default:
		return bench.Config{}, cmdutil.UsageErrorf("--progress %q: auto, bars, lines or none", o.progress)
	}
	if o.interval <= 0 {
		return bench.Config{}, cmdutil.UsageErrorf("--interval %v: must be positive", o.interval)
	}
	// bench.Run turns reconnecting off itself: a dropped connection is counted, not retried
	cfg := bench.Config{Mode: o.mode, Client: cmdutil.ClientConfig(spec), ConnectRate: o.connectRate, ConnectParallel: o.connectParallel,
		Rate: o.rate, QoS: packet.QoS(o.qos), PayloadSize: o.size, Topic: cmp.Or(o.topic, f.Topic), Filter: o.filter,
		Duration: o.duration, Count: o.count, Inflight: o.inflight, Drain: o.drain, Interval: o.interval}
	switch o.mode {
	case bench.Pub:
		cfg.Publishers = o.clients
	case bench.Sub:
		cfg.Subscribers = o.clients
	case bench.PubSub:
		cfg.Publishers, cfg.Subscribers = o.clients, o.subscribers
	case bench.Conn:
		cfg.Connections = o.clients
	}
	return cfg, nil
}

func runBench(ctx context.Context, streams cmdutil.IO, f *cmdutil.ConnFlags, o *benchOptions) error {
	defer func() {
		if f.Capture != nil {
			f.Capture.Finish(streams, f.Quiet)
			f.Capture = nil
		}
	}()
	spec, err := f.BuildSpec(streams, nil)
	if err != nil {
		return err
	}
	cfg, err := benchConfig(spec, f, o)
	if err != nil {
		return err
	}
	var report *os.File
	if o.report != "" { // before the run: a path that cannot be written fails now, not after it
		if report, err = os.Create(o.report); err != nil {
			return &cmdutil.Failure{Code: cmdutil.ExitError, Err: fmt.Errorf("--report: %w", err)}
		}
		defer report.Close()
	}
	view := newProgressView(ctx, streams, f, o, &cfg)
	if view != nil {
		cfg.Progress = view.update
	}
	res, err := bench.Run(ctx, cfg)
	if view != nil {
		view.finish()
	}
	if err != nil {
		return runError(err, spec)
	}
	if f.JSONOut {
		b, _ := json.Marshal(res)
		fmt.Fprintf(streams.Out, "%s\n", b)
	} else {
		writeBenchSummary(streams.Out, res)
	}
	if res.ConnectErrors > 0 && !f.Quiet {
		fmt.Fprintf(streams.Err, "fennec: hint: %d connections failed. A broker needs a file descriptor per connection: "+
			"mosquitto takes at most its open-file limit (raise it with LimitNOFILE= in its systemd unit, or ulimit -n before starting it) "+
			"and max_connections (-1: no limit); a TLS broker also needs the CPU for the handshakes (lower --connect-rate)\n", res.ConnectErrors)
	}
	if report != nil {
		if err := writeReport(streams, f, o, report, res); err != nil {
			return err
		}
	}
	if res.Interrupted {
		return cmdutil.QuietError{Err: context.Canceled}
	}
	return nil
}

// newProgressView shows the run's progress as --progress says: bars on a terminal, lines
// otherwise, nothing with -q. It returns nil for none.
func newProgressView(ctx context.Context, streams cmdutil.IO, f *cmdutil.ConnFlags, o *benchOptions, cfg *bench.Config) progressView {
	mode := o.progress
	if mode == "auto" {
		mode = "lines"
		if isTerminal(streams.Err) {
			mode = "bars"
		}
	}
	if f.Quiet {
		mode = "none"
	}
	switch mode {
	case "bars":
		return newBarView(ctx, streams.Err, cfg)
	case "lines":
		return &lineView{w: streams.Err}
	}
	return nil
}

// runError explains why a run could not be made: no client connected (the first one's failure,
// explained as any connection failure), the file limit, or options the run refused.
func runError(err error, spec *cmdutil.ConnSpec) error {
	var nce *bench.NoConnectionError
	var fle *bench.FileLimitError
	switch {
	case errors.As(err, &fle):
		return &cmdutil.Failure{Code: cmdutil.ExitError, Err: err}
	case errors.As(err, &nce):
		e := cmdutil.ExplainClientError(nce.Err, spec)
		if e == nil {
			e = &cmdutil.Failure{Code: cmdutil.ExitError, Err: nce.Err}
		}
		e.Hint = strings.TrimSpace(fmt.Sprintf("none of the %d clients connected; the first one's failure:\n%s", nce.Attempts, e.Hint))
		if errors.Is(nce.Err, syscall.ECONNREFUSED) && (spec.Host == "localhost" || strings.HasPrefix(spec.Host, "127.") || spec.Host == "::1") {
			e.Hint += "\nor start a broker here to measure: fennec broker (MQTT on 127.0.0.1:1883, MQTT over TLS 1.3 with mutual TLS on 8883)"
		}
		return e
	}
	return cmdutil.UsageError{Err: err}
}

// writeReport writes the HTML report of --report into the file opened before the run.
func writeReport(streams cmdutil.IO, f *cmdutil.ConnFlags, o *benchOptions, report *os.File, res *bench.Result) error {
	if err := bench.WriteReport(report, res); err != nil {
		return &cmdutil.Failure{Code: cmdutil.ExitError, Err: fmt.Errorf("--report: %w", err)}
	}
	if err := report.Close(); err != nil {
		return &cmdutil.Failure{Code: cmdutil.ExitError, Err: fmt.Errorf("--report: %w", err)}
	}
	if !f.Quiet {
		fmt.Fprintf(streams.Err, "fennec: report written to %s\n", o.report)
	}
	return nil
}

func writeBenchSummary(w io.Writer, res *bench.Result) {
	fmt.Fprintf(w, "fennec bench %s %s (MQTT %s, QoS %d, %d-byte payloads)\n", res.Mode, cmdutil.RedactURL(res.Server), res.Version, res.QoS, res.PayloadSize)
	rows := bench.Summary(res)
	width := 0
	for _, r := range rows {
		width = max(width, len(r.Name))
	}
	for _, r := range rows {
		fmt.Fprintf(w, "  %-*s  %s\n", width, r.Name, r.Value)
	}
	if res.Interrupted {
		fmt.Fprintln(w, "  (interrupted: the figures cover what ran)")
	}
}

// isTerminal says whether w is a terminal bars can be drawn on: one with a width (a
// pseudo-terminal without a size, as some CI runners give, gets plain lines).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false
	}
	width, _, err := term.GetSize(int(f.Fd()))
	return err == nil && width > 0
}

// progressView shows bench.Progress samples as they come; finish is called once, after the run.
type progressView interface {
	update(bench.Progress)
	finish()
}

// lineView prints one line per sample: for logs, CI and pipes.
type lineView struct{ w io.Writer }

func (v *lineView) update(p bench.Progress) {
	fmt.Fprintf(v.w, "fennec bench: %6.1fs %-7s connected %d/%d  out %.0f/s  in %.0f/s  sent %d  received %d  errors %d\n",
		p.Elapsed.Seconds(), p.Phase, p.Connected, p.Clients, p.SendRate, p.RecvRate, p.Sent, p.Received, p.Errors)
}

func (v *lineView) finish() {}

// barView draws two bars with mpb: connections up, and the measurement's progress (by time,
// or by count with --count) with the rates and errors beside it.
type barView struct {
	p         *mpb.Progress
	conns     *mpb.Bar
	run       *mpb.Bar
	cfg       *bench.Config
	mu        sync.Mutex
	last      bench.Progress
	runStart  time.Time
	connsDone bool
}

const barScale = 1000 // the run bar counts thousandths

func newBarView(ctx context.Context, w io.Writer, cfg *bench.Config, opts ...mpb.ContainerOption) *barView {
	v := &barView{cfg: cfg}
	v.p = mpb.NewWithContext(ctx, append([]mpb.ContainerOption{mpb.WithOutput(w), mpb.WithWidth(80), mpb.WithRefreshRate(200 * time.Millisecond)}, opts...)...)
	v.conns = v.p.AddBar(0, // its total comes with the first sample (Progress.Clients)
		mpb.PrependDecorators(decor.Name("connections", decor.WC{W: 12, C: decor.DindentRight})),
		mpb.AppendDecorators(decor.CountersNoUnit("%d / %d"), decor.Any(func(decor.Statistics) string {
			v.mu.Lock()
			defer v.mu.Unlock()
			return fmt.Sprintf("  errors %d", v.last.Errors)
		})))
	v.run = v.p.AddBar(barScale,
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
			v.mu.Lock()
			defer v.mu.Unlock()
			return fmt.Sprintf("%-12s", cmp.Or(v.last.Phase, "connect"))
		})),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
			v.mu.Lock()
			defer v.mu.Unlock()
			p := v.last
			if cfg.Mode == bench.Conn {
				return fmt.Sprintf("%5.0fs  up %d", p.Elapsed.Seconds(), p.Connected)
			}
			return fmt.Sprintf("%5.0fs  out %.0f/s  in %.0f/s  sent %d  received %d", p.Elapsed.Seconds(), p.SendRate, p.RecvRate, p.Sent, p.Received)
		})))
	return v
}

func (v *barView) update(p bench.Progress) {
	v.mu.Lock()
	v.last = p
	if p.Phase != "connect" && v.runStart.IsZero() {
		v.runStart = time.Now()
	}
	start, done := v.runStart, v.connsDone
	v.connsDone = v.connsDone || p.Phase != "connect"
	v.mu.Unlock()
	if !done {
		v.conns.SetTotal(int64(p.Clients), false)
	}
	v.conns.SetCurrent(int64(p.Connected))
	if p.Phase != "connect" && !done {
		v.conns.SetTotal(-1, true) // every connect ended, up or failed
	}
	if frac, ok := v.fraction(p, start); ok {
		v.run.SetCurrent(int64(frac * barScale))
	}
}

// fraction is how far the measurement is: by time when it ends at a known time, else by count.
func (v *barView) fraction(p bench.Progress, start time.Time) (float64, bool) {
	if p.Phase == "connect" {
		return 0, false
	}
	if !p.MeasureEnd.IsZero() && !start.IsZero() {
		total := p.MeasureEnd.Sub(start)
		if total <= 0 {
			return 1, true
		}
		return min(1, float64(time.Since(start))/float64(total)), true
	}
	if v.cfg.Count > 0 {
		switch v.cfg.Mode {
		case bench.Sub:
			return min(1, float64(p.Received)/float64(v.cfg.Count)), true
		default:
			return min(1, float64(p.Sent)/float64(v.cfg.Count*max(v.cfg.Publishers, 1))), true
		}
	}
	return 0, false
}

func (v *barView) finish() {
	v.conns.SetTotal(-1, true)
	v.run.SetTotal(-1, true)
	v.p.Wait()
}
