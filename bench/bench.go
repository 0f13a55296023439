package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// Mode is what a run does.
type Mode string

// The modes, as emqtt-bench names them.
const (
	Pub    Mode = "pub"    // publishers only: publish rate and acknowledgement latency
	Sub    Mode = "sub"    // subscribers only: what arrives from publishers elsewhere
	PubSub Mode = "pubsub" // both, in this process: loss, duplicates, order, end-to-end latency
	Conn   Mode = "conn"   // idle connections: connect rate and memory per connection
)

// Config describes a run. The zero value of each field has the default its comment gives.
type Config struct {
	Mode Mode
	// Client is the template of every connection: Server, TLSConfig, Version, credentials,
	// KeepAlive, Dial. ClientID is a prefix (default "fennec-bench-RUN"): each connection
	// adds "-p3", "-s0" or "-c12". Reconnecting is off: a connection that drops ends that
	// client's part, and the drop is counted.
	Client fennec.Config
	// Publishers (pub, pubsub; default 1), Subscribers (sub, pubsub; default 1) and
	// Connections (conn; default 100) are the numbers of clients.
	Publishers, Subscribers, Connections int
	// ConnectRate is new connections per second over the run (0: as fast as they complete,
	// ConnectParallel at a time, default 32).
	ConnectRate     float64
	ConnectParallel int
	// Rate is messages per second per publisher (0: as fast as the in-flight window allows).
	Rate float64
	// QoS of publications and subscriptions.
	QoS packet.QoS
	// PayloadSize in bytes, at least HeaderSize (default 64).
	PayloadSize int
	// Topic is the topic published to; %i is replaced by the publisher's index (default
	// "fennec/bench/%i").
	Topic string
	// Filter is what subscribers subscribe to (default: Topic with a %i level as "+"; %i
	// elsewhere in a level, "#" from that level on). %i in it is the subscriber's index.
	Filter string
	// Duration bounds the measurement (publishing, or holding connections in conn mode);
	// Count bounds messages per publisher (pub, pubsub) or received in total (sub). Without
	// both, Duration is 10 s.
	Duration time.Duration
	Count    int
	// Inflight is how many publishes of one publisher may be outstanding (default 100); for
	// QoS 1 and 2 it is also Client.MaxInflight unless that is set. QoS 2 over MQTT 3.1.1 is
	// further held to the client's QoS 2 window (Client.MaxInflightQoS2; zero: 20).
	Inflight int
	// Drain is how long pubsub waits, after publishing ended, for the last messages (default 5 s).
	Drain time.Duration
	// Interval between progress samples (default 1 s); Progress, if set, is called with each.
	Interval time.Duration
	Progress func(Progress)
}

// Progress is a sample taken during the run.
type Progress struct {
	Elapsed    time.Duration // since the run started
	Phase      string        // "connect", "run", "drain" or "hold"
	Connected  int           // connections up
	Clients    int           // connections the run makes
	Sent       uint64        // publishes completed so far
	Received   uint64        // messages received so far
	Errors     uint64        // failed connects, failed publishes and dropped connections
	SendRate   float64       // messages per second since the previous sample
	RecvRate   float64
	MeasureEnd time.Time // when the measurement ends, if known (zero otherwise)
}

// Percentiles summarise a histogram, in microseconds.
type Percentiles struct {
	Count uint64  `json:"count"`
	Min   float64 `json:"min_us"`
	Mean  float64 `json:"mean_us"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p99_9_us"`
	Max   float64 `json:"max_us"`
}

func percentiles(h *hdrhistogram.Histogram) Percentiles {
	if h == nil || h.TotalCount() == 0 {
		return Percentiles{}
	}
	return Percentiles{Count: uint64(h.TotalCount()), Min: float64(h.Min()), Mean: h.Mean(),
		P50: float64(h.ValueAtQuantile(50)), P90: float64(h.ValueAtQuantile(90)),
		P99: float64(h.ValueAtQuantile(99)), P999: float64(h.ValueAtQuantile(99.9)), Max: float64(h.Max())}
}

// Sample is one point of the throughput timeline: messages per second over the interval
// ending At seconds after the measurement started.
type Sample struct {
	At        float64 `json:"at_s"`
	Sent      float64 `json:"sent_per_s"`
	Received  float64 `json:"received_per_s"`
	Connected int     `json:"connected"`
}

// maxSamples bounds the timeline (a day of one-second samples); later samples are not kept.
const maxSamples = 86400

// Result is what a run measured. Rates are over the measurement: from when every client
// was connected to the last publish (sent) or the last message received; in sub mode,
// whose publishers start when they start, from the first message received to the last.
type Result struct {
	Mode        Mode       `json:"mode"`
	Server      string     `json:"server"`
	Version     string     `json:"mqtt_version"`
	QoS         packet.QoS `json:"qos"`
	PayloadSize int        `json:"payload_size"`
	Publishers  int        `json:"publishers"`
	Subscribers int        `json:"subscribers"`
	Connections int        `json:"connections"`
	Run         uint32     `json:"run_id"`
	Elapsed     float64    `json:"elapsed_s"` // the measurement

	Connected      int         `json:"connected"`
	ConnectErrors  uint64      `json:"connect_errors"`
	ConnectTime    Percentiles `json:"connect_time"`
	ConnectsPerSec float64     `json:"connects_per_s"`
	Dropped        uint64      `json:"connections_dropped"`

	Sent          uint64      `json:"sent"`
	PublishErrors uint64      `json:"publish_errors"`
	SendRate      float64     `json:"sent_per_s"`
	SendBytesRate float64     `json:"sent_bytes_per_s"`
	AckLatency    Percentiles `json:"ack_latency"` // publish to PUBACK/PUBCOMP (QoS 0: written)

	Received uint64       `json:"received"`
	Receive  TrackerStats `json:"receive"`
	Lost     uint64       `json:"lost"`
	// ClientDropped is how many of the lost QoS 0 messages the subscribers' own clients
	// dropped (fennec.Stats.DroppedQoS0); the rest the broker or the network did not deliver.
	ClientDropped uint64      `json:"client_dropped_qos0"`
	ReceiveRate   float64     `json:"received_per_s"`
	RecvBytesRate float64     `json:"received_bytes_per_s"`
	Latency       Percentiles `json:"latency"` // end to end, from the header's send time

	CPU    CPU      `json:"cpu"`
	Memory Memory   `json:"memory"`
	Errors []string `json:"errors,omitempty"` // the first distinct errors, at most 10

	Timeline    []Sample `json:"timeline"`
	Interrupted bool     `json:"interrupted"`

	latency, ack *hdrhistogram.Histogram
}

// CPU is the process's CPU time over the measurement.
type CPU struct {
	User    float64 `json:"user_s"`
	System  float64 `json:"system_s"`
	Percent float64 `json:"percent"` // of one core
}

// Memory is the process's memory: the Go heap in use before and after the clients
// connected (after a collection), per connection, and the resident set size.
type Memory struct {
	HeapBefore           uint64  `json:"heap_before"`
	HeapConnected        uint64  `json:"heap_connected"`
	HeapPerConnection    float64 `json:"heap_per_connection"`
	GoroutinesPerConnect float64 `json:"goroutines_per_connection"`
	RSS                  uint64  `json:"rss,omitempty"`      // at the end (Linux)
	PeakRSS              uint64  `json:"peak_rss,omitempty"` // high-water mark (Linux)
}

// LatencyHistogram returns the end-to-end latency histogram (microseconds), nil if none.
func (r *Result) LatencyHistogram() *hdrhistogram.Histogram { return r.latency }

// AckHistogram returns the acknowledgement latency histogram (microseconds), nil if none.
func (r *Result) AckHistogram() *hdrhistogram.Histogram { return r.ack }

func (c *Config) defaults() error {
	switch c.Mode {
	case Pub, Sub, PubSub, Conn:
	default:
		return fmt.Errorf("bench: unknown mode %q (pub, sub, pubsub or conn)", c.Mode)
	}
	if c.Publishers == 0 {
		c.Publishers = 1
	}
	if c.Subscribers == 0 {
		c.Subscribers = 1
	}
	if c.Connections == 0 {
		c.Connections = 100
	}
	if c.Publishers < 0 || c.Subscribers < 0 || c.Connections < 0 || c.Count < 0 || c.Rate < 0 || c.ConnectRate < 0 || c.Inflight < 0 {
		return errors.New("bench: clients, count and rates cannot be negative")
	}
	if c.ConnectParallel <= 0 {
		c.ConnectParallel = 32
	}
	if c.QoS > 2 {
		return fmt.Errorf("bench: QoS %d: 0, 1 or 2", c.QoS)
	}
	if c.PayloadSize == 0 {
		c.PayloadSize = 64
	}
	if c.PayloadSize < HeaderSize {
		return fmt.Errorf("bench: payload size %d is below the %d bytes of the header (sequence number and send time)", c.PayloadSize, HeaderSize)
	}
	if c.Topic == "" {
		c.Topic = "fennec/bench/%i"
	}
	if c.Filter == "" {
		c.Filter = FilterFor(c.Topic)
	}
	if c.Duration == 0 && c.Count == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Inflight == 0 {
		c.Inflight = 100
	}
	if c.Drain == 0 {
		c.Drain = 5 * time.Second
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.Client.Server == "" {
		return errors.New("bench: no broker (Client.Server)")
	}
	return nil
}

// FilterFor is the subscription that receives what every publisher of topic sends: a level
// that is %i becomes "+", a level holding %i among other text ends the filter with "#".
func FilterFor(topic string) string {
	levels := strings.Split(topic, "/")
	for i, l := range levels {
		if l == "%i" {
			levels[i] = "+"
		} else if strings.Contains(l, "%i") {
			return strings.Join(append(levels[:i:i], "#"), "/")
		}
	}
	return strings.Join(levels, "/")
}

func expand(pattern string, i int) string {
	return strings.ReplaceAll(pattern, "%i", strconv.Itoa(i))
}

// NoConnectionError is Run's error when no client connected: Err is the first connect
// error (a *fennec.ConnectError or *fennec.ReasonError, say), for errors.As.
type NoConnectionError struct {
	Attempts int
	Err      error
}

func (e *NoConnectionError) Error() string {
	return fmt.Sprintf("bench: none of %d clients connected: %v", e.Attempts, e.Err)
}

func (e *NoConnectionError) Unwrap() error { return e.Err }

// runner is one run's state.
type runner struct {
	cfg Config
	run uint32

	connected, connectErrs, dropped    atomic.Int64
	sent, pubErrs, received, recvBytes atomic.Uint64
	firstRecv, lastRecv                atomic.Int64 // unix nanoseconds

	mu         sync.Mutex
	connectH   *hdrhistogram.Histogram
	errs       []string
	first      error // the first error noted, kept whole for errors.As
	phase      string
	measureEnd time.Time
}

func (r *runner) noteErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.first == nil {
		r.first = err
	}
	if len(r.errs) >= 10 {
		return
	}
	s := err.Error()
	for _, e := range r.errs {
		if e == s {
			return
		}
	}
	r.errs = append(r.errs, s)
}

func (r *runner) setPhase(p string, end time.Time) {
	r.mu.Lock()
	r.phase, r.measureEnd = p, end
	r.mu.Unlock()
}

// Run runs a benchmark and returns what it measured. Cancelling ctx ends it early: the
// result covers what ran (Interrupted is set) and the error is nil. An error means the run
// could not start or no client connected.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	r := newRunner(cfg)
	res := r.newResult()
	total := res.Publishers + res.Subscribers + res.Connections
	if err := raiseFileLimit(total + 64); err != nil {
		return nil, err
	}
	stopSampler := r.sample(ctx, time.Now(), total, res)
	defer stopSampler() // idempotent: also called before the result is read

	subs, pubs, all := r.connectPhase(ctx, res)
	defer r.closeAll(all)
	if res.Connected == 0 {
		stopSampler()
		r.finish(res, 0)
		if ctx.Err() != nil {
			res.Interrupted = true
			return res, nil
		}
		r.mu.Lock()
		first := r.first
		r.mu.Unlock()
		if first == nil {
			first = errors.New("no connection was attempted")
		}
		return res, &NoConnectionError{Attempts: total, Err: first}
	}
	measured := r.measurePhase(ctx, res, subs, pubs)
	stopSampler()
	r.finish(res, measured)
	return res, nil
}

func newRunner(cfg Config) *runner {
	var b [4]byte
	_, _ = rand.Read(b[:])
	r := &runner{cfg: cfg, run: binary.BigEndian.Uint32(b[:]), connectH: hdrhistogram.New(1, maxLatencyMicros, 3), phase: "connect"}
	if r.cfg.Client.ClientID == "" {
		r.cfg.Client.ClientID = fmt.Sprintf("fennec-bench-%08x", r.run)
	}
	if r.cfg.Client.Version == 0 {
		r.cfg.Client.Version = packet.V5
	}
	r.cfg.Client.DisableReconnect = true
	if cfg.QoS > 0 && r.cfg.Client.MaxInflight == 0 {
		r.cfg.Client.MaxInflight = cfg.Inflight
	}
	return r
}

// newResult is the result before anything ran: what the run is, and the clients of its mode.
func (r *runner) newResult() *Result {
	cfg := r.cfg
	res := &Result{Mode: cfg.Mode, Server: cfg.Client.Server, Version: cfg.Client.Version.String(), QoS: cfg.QoS,
		PayloadSize: cfg.PayloadSize, Run: r.run}
	switch cfg.Mode {
	case Pub:
		res.Publishers = cfg.Publishers
	case Sub:
		res.Subscribers = cfg.Subscribers
	case PubSub:
		res.Publishers, res.Subscribers = cfg.Publishers, cfg.Subscribers
	case Conn:
		res.Connections = cfg.Connections
	}
	return res
}

// connectPhase connects the subscribers first, so that they miss nothing, and subscribes
// them; then the publishers or the idle connections, all through one connect limiter. It
// records the connect figures and the memory the connections cost.
func (r *runner) connectPhase(ctx context.Context, res *Result) (subs, pubs, all []client) {
	cfg := r.cfg
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.Memory.HeapBefore = ms.HeapInuse
	goBefore := runtime.NumGoroutine()

	lim := newLimiter(cfg.ConnectRate, cfg.ConnectParallel)
	connectStart := time.Now()
	subs = r.connectAll(ctx, lim, "s", res.Subscribers, func(i int, c *fennec.Config) *Tracker {
		tr := &Tracker{FromFirst: cfg.Mode == Sub}
		c.DefaultHandler = func(m *fennec.Message) { // also the subscription's handler
			now := time.Now()
			tr.Observe(m.Payload, now)
			r.received.Add(1)
			r.recvBytes.Add(uint64(len(m.Payload)))
			r.firstRecv.CompareAndSwap(0, now.UnixNano())
			r.lastRecv.Store(now.UnixNano())
		}
		return tr
	})
	for i, s := range subs {
		if s.c == nil {
			continue
		}
		if _, err := s.c.Subscribe(ctx, s.h, packet.Subscription{Filter: expand(cfg.Filter, i), QoS: cfg.QoS}); err != nil {
			r.noteErr(fmt.Errorf("subscribe: %w", err))
			r.connectErrs.Add(1)
			_ = s.c.Close()
			subs[i].c = nil
			r.connected.Add(-1)
		}
	}
	pubs = r.connectAll(ctx, lim, "p", res.Publishers, func(int, *fennec.Config) *Tracker { return nil })
	conns := r.connectAll(ctx, lim, "c", res.Connections, func(int, *fennec.Config) *Tracker { return nil })
	connectElapsed := time.Since(connectStart)
	all = append(append(append([]client(nil), subs...), pubs...), conns...)

	res.Connected = int(r.connected.Load())
	res.ConnectErrors = uint64(r.connectErrs.Load())
	r.mu.Lock()
	res.ConnectTime = percentiles(r.connectH)
	r.mu.Unlock()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	res.Memory.HeapConnected = ms.HeapInuse
	if res.Connected > 0 {
		res.ConnectsPerSec = float64(res.Connected) / connectElapsed.Seconds()
		res.Memory.HeapPerConnection = (float64(ms.HeapInuse) - float64(res.Memory.HeapBefore)) / float64(res.Connected)
		res.Memory.GoroutinesPerConnect = float64(runtime.NumGoroutine()-goBefore) / float64(res.Connected)
	}
	return subs, pubs, all
}

// measurePhase runs the mode's measurement and fills in what it measured; it returns how long
// the measurement took.
func (r *runner) measurePhase(ctx context.Context, res *Result, subs, pubs []client) time.Duration {
	cfg := r.cfg
	cpu0 := cpuTime()
	t0 := time.Now()
	var end time.Time
	if cfg.Duration > 0 {
		end = t0.Add(cfg.Duration)
	} else if cfg.Mode == Conn { // Count means nothing here: hold for the default
		end = t0.Add(10 * time.Second)
	}
	mctx, cancel := context.WithCancel(ctx)
	if !end.IsZero() {
		cancel()
		mctx, cancel = context.WithDeadline(ctx, end)
	}
	defer cancel()
	var pubElapsed time.Duration
	switch cfg.Mode {
	case Conn:
		r.setPhase("hold", end)
		<-mctx.Done()
	case Sub:
		r.setPhase("run", end)
		r.awaitReceived(mctx, uint64(cfg.Count))
	case Pub, PubSub:
		r.setPhase("run", end)
		expected, ack := r.publishAll(mctx, pubs)
		pubElapsed = time.Since(t0)
		res.ack = ack
		if cfg.Mode == PubSub && ctx.Err() == nil {
			var want uint64
			for _, n := range expected {
				want += n
			}
			want *= uint64(countLive(subs))
			dctx, dcancel := context.WithTimeout(ctx, cfg.Drain)
			r.setPhase("drain", time.Now().Add(cfg.Drain))
			r.awaitUnique(dctx, subs, want)
			dcancel()
		}
		for _, s := range subs {
			if s.tr != nil && s.c != nil {
				res.Lost += s.tr.Lost(r.run, expected)
			}
		}
	}
	res.Interrupted = ctx.Err() != nil
	measured := time.Since(t0)
	cpu := cpuTime().sub(cpu0)
	res.CPU = CPU{User: cpu.user.Seconds(), System: cpu.system.Seconds()}
	if measured > 0 {
		res.CPU.Percent = 100 * (cpu.user + cpu.system).Seconds() / measured.Seconds()
	}
	res.Sent, res.PublishErrors = r.sent.Load(), r.pubErrs.Load()
	if pubElapsed > 0 {
		res.SendRate = float64(res.Sent) / pubElapsed.Seconds()
		res.SendBytesRate = res.SendRate * float64(cfg.PayloadSize)
	}
	res.AckLatency = percentiles(res.ack)
	r.collectReceived(res, subs, t0)
	return measured
}

// collectReceived adds up what the subscribers counted.
func (r *runner) collectReceived(res *Result, subs []client, t0 time.Time) {
	lat := newLatencyHistogram()
	for _, s := range subs {
		if s.tr == nil {
			continue
		}
		res.Receive.add(s.tr.Stats())
		lat.Merge(s.tr.Latency())
		if s.c != nil {
			res.ClientDropped += s.c.Stats().DroppedQoS0
		}
	}
	if r.cfg.Mode == Sub {
		res.Lost = res.Receive.Gaps
	}
	res.latency = lat
	res.Latency = percentiles(lat)
	res.Received = r.received.Load()
	if last := r.lastRecv.Load(); last > 0 {
		from := t0
		if r.cfg.Mode == Sub { // the publishers are elsewhere and start when they start
			from = time.Unix(0, r.firstRecv.Load())
		}
		if d := time.Unix(0, last).Sub(from); d > 0 {
			res.ReceiveRate = float64(res.Received) / d.Seconds()
			res.RecvBytesRate = float64(r.recvBytes.Load()) / d.Seconds()
		}
	}
}

func (r *runner) finish(res *Result, measured time.Duration) {
	res.Elapsed = measured.Seconds()
	res.Dropped = uint64(r.dropped.Load())
	res.Memory.RSS, res.Memory.PeakRSS = rss()
	r.mu.Lock()
	res.Errors = append([]string(nil), r.errs...)
	r.mu.Unlock()
}

func (s *TrackerStats) add(o TrackerStats) {
	s.Received += o.Received
	s.Unique += o.Unique
	s.Duplicates += o.Duplicates
	s.Reordered += o.Reordered
	s.Gaps += o.Gaps
	s.Forgotten += o.Forgotten
	s.NoHeader += o.NoHeader
	s.Untracked += o.Untracked
	s.ClockSkew += o.ClockSkew
}

type client struct {
	c  *fennec.Client
	tr *Tracker
	h  fennec.MessageHandler
}

func countLive(cs []client) int {
	n := 0
	for _, c := range cs {
		if c.c != nil {
			n++
		}
	}
	return n
}

// limiter paces connection attempts: at rate per second, or parallel at a time.
type limiter struct {
	rate  float64
	start time.Time
	next  atomic.Int64
	slots chan struct{}
}

func newLimiter(rate float64, parallel int) *limiter {
	return &limiter{rate: rate, start: time.Now(), slots: make(chan struct{}, parallel)}
}

func (l *limiter) wait(ctx context.Context) error {
	if l.rate > 0 {
		n := l.next.Add(1) - 1
		at := l.start.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
		t := time.NewTimer(time.Until(at))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *limiter) done() { <-l.slots }

// connectAll connects n clients of one kind; setup adds to each one's configuration and may
// return the Tracker its messages go to. A client that failed is left nil.
func (r *runner) connectAll(ctx context.Context, lim *limiter, kind string, n int, setup func(int, *fennec.Config) *Tracker) []client {
	out := make([]client, n)
	var wg sync.WaitGroup
	for i := range n {
		if err := lim.wait(ctx); err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer lim.done()
			cfg := r.cfg.Client
			cfg.ClientID = r.cfg.Client.ClientID + "-" + kind + strconv.Itoa(i)
			tr := setup(i, &cfg)
			prev := cfg.OnConnectionLost
			cfg.OnConnectionLost = func(c *fennec.Client, err error) {
				r.dropped.Add(1)
				r.connected.Add(-1)
				r.noteErr(fmt.Errorf("%s: connection lost: %w", cfg.ClientID, err))
				if prev != nil {
					prev(c, err)
				}
			}
			t := time.Now()
			c, err := fennec.Connect(ctx, cfg)
			if err != nil {
				if ctx.Err() == nil {
					r.connectErrs.Add(1)
					r.noteErr(err)
				}
				return
			}
			d := time.Since(t)
			r.mu.Lock()
			_ = r.connectH.RecordValue(max(int64(d/time.Microsecond), 1))
			r.mu.Unlock()
			r.connected.Add(1)
			out[i] = client{c: c, tr: tr, h: cfg.DefaultHandler}
		}()
	}
	wg.Wait()
	return out
}

func (r *runner) closeAll(cs []client) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for _, c := range cs {
		if c.c == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if c.c.Disconnect(ctx) != nil {
				_ = c.c.Close()
			}
		}()
	}
	wg.Wait()
}

// publishAll runs the publishers until ctx ends or each sent Count; it returns how many
// each one had acknowledged (the sequence numbers subscribers should have seen) and the
// merged acknowledgement latency.
func (r *runner) publishAll(ctx context.Context, pubs []client) (map[uint32]uint64, *hdrhistogram.Histogram) {
	expected := map[uint32]uint64{}
	var mu sync.Mutex
	ack := newLatencyHistogram()
	var wg sync.WaitGroup
	for i, p := range pubs {
		if p.c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, h := r.publish(ctx, uint32(i), p.c)
			mu.Lock()
			expected[uint32(i)] = n
			ack.Merge(h)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return expected, ack
}

type pending struct {
	t     *fennec.Token
	start time.Time
	buf   []byte
}

// publish is one publisher: sequence numbers from 0, at most Inflight outstanding, paced to
// Rate. It returns how many of its messages were acknowledged (QoS 0: written), which is what
// each subscriber should receive of it, and the acknowledgement latency.
func (r *runner) publish(ctx context.Context, idx uint32, c *fennec.Client) (uint64, *hdrhistogram.Histogram) {
	cfg := &r.cfg
	topic := expand(cfg.Topic, int(idx))
	window := make(chan pending, cfg.Inflight)
	free := make(chan []byte, cfg.Inflight+1)
	h := newLatencyHistogram()
	var acked uint64
	done := make(chan struct{})
	giveUp := make(chan struct{}) // publishing ended Drain ago: outstanding publishes are not awaited
	stopGiveUp := context.AfterFunc(ctx, func() {
		t := time.NewTimer(cfg.Drain)
		defer t.Stop()
		select {
		case <-t.C:
			close(giveUp)
		case <-done:
		}
	})
	defer stopGiveUp()
	go func() {
		defer close(done)
		for p := range window {
			select {
			case <-p.t.Done():
			case <-giveUp:
				r.pubErrs.Add(1)
				r.noteErr(fmt.Errorf("publish: no acknowledgement within %v of the end", cfg.Drain))
				continue
			}
			if err := p.t.Err(); err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				// the run ended while this publish waited for space: not sent, not an error
			} else if err != nil {
				r.pubErrs.Add(1)
				r.noteErr(fmt.Errorf("publish: %w", err))
			} else {
				acked++
				r.sent.Add(1)
				_ = h.RecordValue(max(int64(time.Since(p.start)/time.Microsecond), 1))
			}
			select {
			case free <- p.buf:
			default:
			}
		}
	}()
	start := time.Now()
	var seq uint64
	for ctx.Err() == nil && (cfg.Count == 0 || seq < uint64(cfg.Count)) {
		if cfg.Rate > 0 {
			at := start.Add(time.Duration(float64(seq) / cfg.Rate * float64(time.Second)))
			if d := time.Until(at); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-ctx.Done():
				}
				t.Stop()
				if ctx.Err() != nil {
					break
				}
			}
		}
		var buf []byte
		select {
		case buf = <-free:
		default:
			buf = make([]byte, cfg.PayloadSize)
		}
		now := time.Now()
		Header{Run: r.run, Publisher: idx, Seq: seq, Sent: now}.Put(buf)
		t := c.PublishAsync(ctx, &fennec.Message{Topic: topic, QoS: cfg.QoS, Payload: buf})
		seq++
		window <- pending{t: t, start: now, buf: buf}
	}
	close(window)
	<-done
	return acked, h
}

func (r *runner) awaitReceived(ctx context.Context, n uint64) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for n == 0 || r.received.Load() < n {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (r *runner) awaitUnique(ctx context.Context, subs []client, want uint64) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var got uint64
		for _, s := range subs {
			if s.tr != nil && s.c != nil {
				got += s.tr.Stats().Unique
			}
		}
		if got >= want {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sample calls Progress and fills the timeline every Interval until the returned stop.
func (r *runner) sample(ctx context.Context, start time.Time, clients int, res *Result) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.cfg.Interval)
		defer t.Stop()
		var prevSent, prevRecv uint64
		prev := start
		var t0 time.Time
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case now := <-t.C:
				sent, recv := r.sent.Load(), r.received.Load()
				dt := now.Sub(prev).Seconds()
				p := Progress{Elapsed: now.Sub(start), Connected: int(r.connected.Load()), Clients: clients,
					Sent: sent, Received: recv, Errors: uint64(r.connectErrs.Load()+r.dropped.Load()) + r.pubErrs.Load(),
					SendRate: float64(sent-prevSent) / dt, RecvRate: float64(recv-prevRecv) / dt}
				r.mu.Lock()
				p.Phase, p.MeasureEnd = r.phase, r.measureEnd
				r.mu.Unlock()
				if p.Phase != "connect" {
					if t0.IsZero() {
						t0 = prev
					}
					r.mu.Lock()
					if len(res.Timeline) < maxSamples {
						res.Timeline = append(res.Timeline, Sample{At: now.Sub(t0).Seconds(), Sent: p.SendRate, Received: p.RecvRate, Connected: p.Connected})
					}
					r.mu.Unlock()
				}
				prevSent, prevRecv, prev = sent, recv, now
				if r.cfg.Progress != nil {
					r.cfg.Progress(p)
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(stop); <-done }) }
}
