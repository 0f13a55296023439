// Command compare measures the Fennec client beside paho.mqtt.golang and paho.golang (autopaho)
// against a mosquitto it starts on loopback, over plain TCP and TLS 1.3 with client
// certificates, and prints a markdown table of medians with ratios to paho.mqtt.golang.
//
//	cd benchmarks && go run ./cmd/compare -runs 3
//
// Every run starts a fresh mosquitto for each library and transport and rotates the order of the
// libraries, so no client always goes first. Progress goes to stderr, the table to stdout.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fennec-mqtt/fennec/benchmarks"
)

type options struct {
	runs, n, rtt, warmup, idle, parallel, inflight int
	connects                                       int
	nodelay, ceiling, sweep                        bool
	transports, libs, profileLib, profileDir, only string
	subLib                                         string
	chart                                          string
}

// figure names, in table order
const (
	fQoS0 = "QoS 0 msg/s received"
	fQoS1 = "QoS 1 msg/s received, every PUBACK awaited"
	// fQoS1W is the QoS 1 limit of a client held to the broker's in-flight window, as MQTT 5
	// clients are by its Receive Maximum (mosquitto announces max_inflight_messages); only the
	// limit column has it, and the Fennec ÷ limit columns divide their QoS 1 rate by it.
	fQoS1W = "QoS 1 limit within the broker's in-flight window (its Receive Maximum, binding on MQTT 5 clients)"
	fCPU0  = "QoS 0 client CPU per message (µs, publisher + subscriber)"
	fCPU1  = "QoS 1 client CPU per message (µs, publisher + subscriber)"
	fBrk0  = "QoS 0 broker CPU per message (µs)"
	fBrk1  = "QoS 1 broker CPU per message (µs)"
	fP50   = "QoS 1 publish → arrival p50 (µs)"
	fP99   = "QoS 1 publish → arrival p99 (µs)"
	fHeap  = "heap per idle connection (KiB)"
	fLive  = "live heap objects per idle connection (KiB)"
	fGo    = "goroutines per idle connection"
	fStk   = "goroutine stacks per idle connection (KiB)"
	fConn  = "sequential connects per second (connect, CONNACK, disconnect)"
	fConR  = "sequential connects per second, TLS session resumed (a ClientSessionCache in the tls.Config)"
)

var figures = []string{fQoS0, fQoS1, fQoS1W, fP50, fP99, fConn, fConR, fHeap, fLive, fGo, fStk, fCPU0, fCPU1, fBrk0, fBrk1}

// targets: Fennec ÷ paho.mqtt.golang must be ≥ (higher) or ≤ (!higher) the value.
var targets = map[string]struct {
	ratio  float64
	higher bool
}{
	fQoS0: {1.5, true},
	fQoS1: {3, true},
	fP99:  {0.8, false},
	fHeap: {0.5, false},
}

type key struct{ transport, lib, figure string }

type results struct {
	vals  map[key][]float64
	lost  map[key]int // messages lost, summed over runs
	sent  map[key]int
	reord map[key]int
	// connLost counts connections a Fennec client lost (key without figure)
	connLost map[key]int
}

func main() {
	var o options
	flag.IntVar(&o.runs, "runs", 3, "runs; the table shows medians")
	flag.IntVar(&o.n, "n", 100000, "messages per throughput burst")
	flag.IntVar(&o.rtt, "rtt", 5000, "QoS 1 round trips per latency run (after the warm-up)")
	flag.IntVar(&o.warmup, "warmup", 200, "round trips discarded before the latency samples")
	flag.IntVar(&o.idle, "idle", 1000, "idle clients connected for the memory figures")
	flag.IntVar(&o.parallel, "parallel", 16, "concurrent connects while connecting the idle clients")
	flag.IntVar(&o.inflight, "inflight", 20, "mosquitto max_inflight_messages")
	flag.BoolVar(&o.nodelay, "nodelay", true, "mosquitto set_tcp_nodelay")
	flag.StringVar(&o.transports, "transports", "tcp,tls", "transports: tcp, tls")
	flag.StringVar(&o.libs, "libs", "", "comma-separated short library names (default: all)")
	flag.BoolVar(&o.ceiling, "ceiling", true, "also measure the raw pre-encoded-packet reference client")
	flag.StringVar(&o.subLib, "sub", "", "short name of the library every throughput subscriber uses (default: the publisher's), to tell a publisher's cost from a subscriber's")
	flag.BoolVar(&o.sweep, "sweep", true, "measure the QoS 0 limit: the raw client paced at a sweep of rates around the best library's, the best received rate")
	flag.StringVar(&o.only, "only", "tput,rtt,connect,idle", "measurements to run: tput (QoS 0 and 1 throughput), rtt (round trip), connect (sequential connects), idle")
	flag.IntVar(&o.connects, "connects", 200, "sequential connects per connect run")
	flag.StringVar(&o.chart, "chart", "", "also draw the medians of throughput and round trip per client into this SVG file (gonum/plot)")
	flag.StringVar(&o.profileLib, "profile", "", "short name of a library to profile (CPU during throughput and latency, heap with the idle clients)")
	flag.StringVar(&o.profileDir, "profile-dir", "profiles", "where -profile writes its pprof files")
	var child childOptions
	flag.StringVar(&child.lib, "idle-child", "", "internal: measure idle clients of this library in this process and print JSON")
	flag.StringVar(&child.addr, "idle-child-addr", "", "internal: broker address for -idle-child")
	flag.StringVar(&child.pkiDir, "idle-child-pki", "", "internal: PKI directory for -idle-child over TLS")
	flag.StringVar(&child.heapProfile, "idle-child-heap", "", "internal: heap profile file for -idle-child")
	flag.Parse()
	if child.lib != "" {
		if err := runIdleChild(child, o); err != nil {
			fmt.Fprintln(os.Stderr, "compare:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func run(o options, out, log io.Writer) error {
	limit, err := benchmarks.RaiseFileLimit()
	if err != nil {
		return fmt.Errorf("raising RLIMIT_NOFILE: %w", err)
	}
	if limit < uint64(2*o.idle+100) {
		return fmt.Errorf("RLIMIT_NOFILE is %d, too low for %d idle clients", limit, o.idle)
	}
	libs := benchmarks.Libraries()
	if o.ceiling {
		libs = append(libs, benchmarks.Ceiling())
	}
	if o.libs != "" {
		want := strings.Split(o.libs, ",")
		libs = slices.DeleteFunc(libs, func(l benchmarks.Library) bool { return !slices.Contains(want, l.Short()) })
	}
	if len(libs) == 0 {
		return fmt.Errorf("no library selected")
	}
	transports := strings.Split(o.transports, ",")
	p, err := benchmarks.NewPKI()
	if err != nil {
		return err
	}
	defer p.Close()
	if o.profileLib != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}

	load0 := loadavg()
	res := &results{vals: map[key][]float64{}, lost: map[key]int{}, sent: map[key]int{}, reord: map[key]int{}, connLost: map[key]int{}}
	var conf string
	start := time.Now()
	for r := 0; r < o.runs; r++ {
		for _, tr := range transports {
			for i := range libs {
				lib := libs[(i+r)%len(libs)]
				c, err := measureLib(o, res, p, lib, tr, r, log)
				if err != nil {
					return fmt.Errorf("run %d, %s, %s: %w", r+1, tr, lib.Short(), err)
				}
				conf = c
			}
			if o.ceiling && slices.Contains(strings.Split(o.only, ","), "idle") {
				if err := measureFloor(o, res, p, tr, r, log); err != nil {
					return fmt.Errorf("run %d, %s, floor: %w", r+1, tr, err)
				}
			}
			if o.sweep && slices.Contains(strings.Split(o.only, ","), "tput") {
				if err := measureLimit(o, res, p, tr, r, log); err != nil {
					return fmt.Errorf("run %d, %s, limit: %w", r+1, tr, err)
				}
			}
		}
	}
	if o.sweep {
		libs = append(libs, limitLib{})
	}
	if o.ceiling && slices.Contains(strings.Split(o.only, ","), "idle") {
		libs = append(libs, benchmarks.Floor{})
	}
	fmt.Fprintf(log, "done in %v\n", time.Since(start).Round(time.Second))
	printTable(out, o, res, libs, transports, conf)
	if o.chart != "" {
		if err := writeChart(o.chart, res, libs, transports, o.runs); err != nil {
			return fmt.Errorf("chart: %w", err)
		}
		fmt.Fprintf(log, "chart written to %s\n", o.chart)
	}
	fmt.Fprintf(out, "\nLoad average (1, 5, 15 min) before: %s; after: %s (the machine may be shared).\n", load0, loadavg())
	return nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func measureLib(o options, res *results, p *benchmarks.PKI, lib benchmarks.Library, tr string, run int, log io.Writer) (string, error) {
	b, err := benchmarks.StartBroker(benchmarks.BrokerOptions{MaxInflight: o.inflight, NoDelay: o.nodelay, PKI: p})
	if err != nil {
		return "", err
	}
	defer b.Close()
	ep := b.Endpoint(tr == "tls", p)
	if tr == "tls" && tlsFacts == "" {
		if f, err := b.TLSFacts(p); err == nil {
			tlsFacts = f
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	add := func(f string, v float64) {
		k := key{tr, lib.Short(), f}
		res.vals[k] = append(res.vals[k], v)
	}
	profiling := o.profileLib == lib.Short()
	prefix := filepath.Join(o.profileDir, fmt.Sprintf("%s-%s-run%d", lib.Short(), tr, run+1))
	if profiling {
		f, err := os.Create(prefix + "-cpu.pprof")
		if err != nil {
			return "", err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return "", err
		}
	}
	lost0 := benchmarks.FennecConnectionsLost.Load()
	defer func() {
		if n := benchmarks.FennecConnectionsLost.Load() - lost0; n > 0 {
			res.connLost[key{tr, lib.Short(), ""}] += int(n)
			fmt.Fprintf(log, "run %d %-4s %-14s lost its connection %d times, last: %v\n", run+1, tr, lib.Short(), n, benchmarks.LastFennecLoss())
		}
	}()
	want := func(m string) bool { return slices.Contains(strings.Split(o.only, ","), m) }
	for _, q := range []byte{0, 1} {
		if !want("tput") {
			break
		}
		subLib := lib
		if o.subLib != "" {
			if subLib = libByName(o.subLib); subLib == nil {
				return "", fmt.Errorf("-sub %s: no such library", o.subLib)
			}
		}
		t, err := benchmarks.MeasureThroughputWith(ctx, lib, subLib, ep, q, o.n)
		if err != nil {
			return "", fmt.Errorf("QoS %d throughput: %w (mosquitto log: %s)", q, err, b.Log())
		}
		f, fc, fb := fQoS0, fCPU0, fBrk0
		if q == 1 {
			f, fc, fb = fQoS1, fCPU1, fBrk1
		}
		add(f, t.Rate())
		add(fc, us(t.PerMsg(t.ClientCPU)))
		add(fb, us(t.PerMsg(t.BrokerCPU)))
		k := key{tr, lib.Short(), f}
		res.lost[k] += t.Lost()
		res.sent[k] += t.Sent
		res.reord[k] += t.Reordered
		cv, ci := t.PerMsgSwitches(t.ClientSwitches)
		bv, bi := t.PerMsgSwitches(t.BrokerSwitches)
		fmt.Fprintf(log, "run %d %-4s %-14s QoS %d: %7.0f msg/s, %d lost, %d reordered, %d dup; publisher done %v; CPU/msg client %.2f µs broker %.2f µs; %.1f allocs %.0f B/msg; switches/msg client %.2f+%.2f broker %.2f+%.2f (voluntary+involuntary); %.2f goroutines started/msg\n",
			run+1, tr, lib.Short(), q, t.Rate(), t.Lost(), t.Reordered, t.Dups, t.PublishDone.Round(time.Millisecond),
			us(t.PerMsg(t.ClientCPU)), us(t.PerMsg(t.BrokerCPU)), float64(t.Allocs)/float64(t.Sent), float64(t.AllocBytes)/float64(t.Sent),
			cv, ci, bv, bi, float64(t.Goroutines)/float64(max(1, t.Received)))
	}
	if want("rtt") {
		l, err := benchmarks.MeasureLatency(ctx, lib, ep, o.rtt, o.warmup)
		if err != nil {
			return "", fmt.Errorf("latency: %w", err)
		}
		add(fP50, us(l.Quantile(0.5)))
		add(fP99, us(l.Quantile(0.99)))
		fmt.Fprintf(log, "run %d %-4s %-14s round trip p50 %v p90 %v p99 %v max %v\n", run+1, tr, lib.Short(),
			l.Quantile(0.5), l.Quantile(0.9), l.Quantile(0.99), l.Quantile(1))
	}
	if want("connect") {
		// The raw client measures the connect limit: a dial, the TLS handshake, a CONNECT
		// written whole and a CONNACK read, nothing else — what the machine and the broker allow.
		rate, err := benchmarks.MeasureConnects(ctx, lib, ep, o.connects)
		if err != nil {
			return "", fmt.Errorf("connects: %w", err)
		}
		add(fConn, rate)
		fmt.Fprintf(log, "run %d %-4s %-14s %d sequential connects: %.0f per second\n", run+1, tr, lib.Short(), o.connects, rate)
		if ep.TLS != nil {
			// What a client gets when its tls.Config keeps sessions: pki.ClientConfig (the
			// CLI's) sets a cache by default; the other libraries use the config they are given.
			rep := ep
			rep.TLS = ep.TLS.Clone()
			cache := &countingCache{ClientSessionCache: tls.NewLRUClientSessionCache(64)}
			rep.TLS.ClientSessionCache = cache
			rate, err := benchmarks.MeasureConnects(ctx, lib, rep, o.connects)
			if err != nil {
				return "", fmt.Errorf("connects with session resumption: %w", err)
			}
			if n := cache.offered.Load(); n < int64(o.connects)-1 {
				return "", fmt.Errorf("connects with session resumption: %s offered a session in %d of %d connects", lib.Short(), n, o.connects)
			}
			add(fConR, rate)
			fmt.Fprintf(log, "run %d %-4s %-14s %d sequential connects, session resumed: %.0f per second (a session offered in %d)\n",
				run+1, tr, lib.Short(), o.connects, rate, cache.offered.Load())
		}
	}
	if profiling {
		pprof.StopCPUProfile()
		// Allocations since the program started (alloc_space / alloc_objects): run with -libs
		// set to the profiled library alone to see only its own.
		if f, err := os.Create(prefix + "-allocs.pprof"); err == nil {
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	if lib.Short() == benchmarks.Ceiling().Short() || !want("idle") {
		return b.Conf, nil // a throughput and latency ceiling; its idle cost means nothing
	}
	c := childOptions{lib: lib.Short(), addr: ep.Addr}
	if ep.TLS != nil {
		c.pkiDir = p.Files.Dir
	}
	if profiling {
		c.heapProfile = prefix + "-idle-heap.pprof"
	}
	id, err := idleInChild(ctx, c, o)
	if err != nil {
		return "", fmt.Errorf("idle: %w", err)
	}
	add(fHeap, id.HeapPerConn/1024)
	add(fLive, id.LivePerConn/1024)
	add(fGo, id.GoroutinesPerConn)
	add(fStk, id.StackPerConn/1024)
	fmt.Fprintf(log, "run %d %-4s %-14s %d idle: %.1f KiB heap (%.1f KiB live), %.1f KiB stack, %.1f goroutines per connection (connected in %v)\n",
		run+1, tr, lib.Short(), o.idle, id.HeapPerConn/1024, id.LivePerConn/1024, id.StackPerConn/1024, id.GoroutinesPerConn, id.ConnectTime.Round(time.Millisecond))
	return b.Conf, nil
}

// measureFloor measures the idle cost of the floor connection (benchmarks.Floor) in a child
// process, as the libraries' idle figures are measured.
func measureFloor(o options, res *results, p *benchmarks.PKI, tr string, run int, log io.Writer) error {
	b, err := benchmarks.StartBroker(benchmarks.BrokerOptions{MaxInflight: o.inflight, NoDelay: o.nodelay, PKI: p})
	if err != nil {
		return err
	}
	defer b.Close()
	ep := b.Endpoint(tr == "tls", p)
	c := childOptions{lib: benchmarks.Floor{}.Short(), addr: ep.Addr}
	if ep.TLS != nil {
		c.pkiDir = p.Files.Dir
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	id, err := idleInChild(ctx, c, o)
	if err != nil {
		return err
	}
	for f, v := range map[string]float64{fHeap: id.HeapPerConn / 1024, fLive: id.LivePerConn / 1024, fGo: id.GoroutinesPerConn, fStk: id.StackPerConn / 1024} {
		k := key{tr, "floor", f}
		res.vals[k] = append(res.vals[k], v)
	}
	fmt.Fprintf(log, "run %d %-4s %-14s %d idle: %.1f KiB heap (%.1f KiB live), %.1f KiB stack, %.1f goroutines per connection\n",
		run+1, tr, "floor", o.idle, id.HeapPerConn/1024, id.LivePerConn/1024, id.StackPerConn/1024, id.GoroutinesPerConn)
	return nil
}

// measureOnFreshBroker measures lib's throughput at qos on a broker of its own (the subscriber
// is -sub's library when given).
func measureOnFreshBroker(o options, p *benchmarks.PKI, tr string, lib benchmarks.Library, qos byte) (benchmarks.ThroughputResult, error) {
	b, err := benchmarks.StartBroker(benchmarks.BrokerOptions{MaxInflight: o.inflight, NoDelay: o.nodelay, PKI: p})
	if err != nil {
		return benchmarks.ThroughputResult{}, err
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	subLib := lib
	if o.subLib != "" {
		subLib = libByName(o.subLib)
	}
	return benchmarks.MeasureThroughputWith(ctx, lib, subLib, b.Endpoint(tr == "tls", p), qos, o.n)
}

// libByName is the library, reference client or floor of a short name, nil if none.
func libByName(short string) benchmarks.Library {
	for _, l := range append(benchmarks.Libraries(), benchmarks.Ceiling(), benchmarks.Floor{}) {
		if l.Short() == short {
			return l
		}
	}
	return nil
}

// limitLib is the column of the limit row: not a client, the best of a sweep (measureLimit).
type limitLib struct{ benchmarks.Raw }

func (limitLib) Name() string  { return "limit: best paced raw rate (sweep)" }
func (limitLib) Short() string { return "limit" }

// sweepFactors are the paced rates of the limit sweep, as multiples of the best QoS 0 rate a
// library reached in the same run and transport.
var sweepFactors = []float64{0.7, 0.85, 1.0, 1.1, 1.2, 1.35, 1.5}

// measureLimit finds the QoS 0 limit of this broker on this machine: the raw client paced at
// each rate of the sweep, on a fresh broker each, and the best rate received with nothing lost
// (or, if every rate lost messages, the best rate received). A flood is not the limit: it
// costs single-threaded mosquitto more CPU per message than a paced stream.
func measureLimit(o options, res *results, p *benchmarks.PKI, tr string, run int, log io.Writer) error {
	best := 0.0
	for k, v := range res.vals {
		if k.transport == tr && k.figure == fQoS0 && k.lib != "limit" && len(v) > run {
			best = max(best, v[run])
		}
	}
	if best == 0 {
		return nil
	}
	var lossless, anyRate float64
	for _, f := range sweepFactors {
		lib := benchmarks.Raw{Rate: best * f}
		t, err := measureOnFreshBroker(o, p, tr, lib, 0)
		if err != nil {
			return fmt.Errorf("%s: %w", lib.Short(), err)
		}
		anyRate = max(anyRate, t.Rate())
		if t.Lost() == 0 {
			lossless = max(lossless, t.Rate())
		}
		fmt.Fprintf(log, "run %d %-4s %-14s QoS 0: %7.0f msg/s received, %d lost\n", run+1, tr, lib.Short(), t.Rate(), t.Lost())
	}
	v := lossless
	if v == 0 {
		v = anyRate
	}
	k := key{tr, "limit", fQoS0}
	res.vals[k] = append(res.vals[k], v)
	return measureLimitQoS1(o, res, p, tr, run, log)
}

// measureLimitQoS1 is the QoS 1 limit: the raw client pipelining with a window equal to the
// broker's in-flight limit, and with no window but the packet IDs, reading PUBACKs as they
// come; the better of the two.
func measureLimitQoS1(o options, res *results, p *benchmarks.PKI, tr string, run int, log io.Writer) error {
	best := 0.0
	for _, w := range []int{o.inflight, 0} {
		lib := benchmarks.Raw{Window: w}
		t, err := measureOnFreshBroker(o, p, tr, lib, 1)
		if err != nil {
			return fmt.Errorf("%s: %w", lib.Short(), err)
		}
		if t.Lost() == 0 {
			best = max(best, t.Rate())
			if w > 0 {
				k := key{tr, "limit", fQoS1W}
				res.vals[k] = append(res.vals[k], t.Rate())
			}
		}
		fmt.Fprintf(log, "run %d %-4s %-14s QoS 1: %7.0f msg/s received, %d lost\n", run+1, tr, lib.Short(), t.Rate(), t.Lost())
	}
	k := key{tr, "limit", fQoS1}
	res.vals[k] = append(res.vals[k], best)
	return nil
}

// countingCache counts the connects that found a session to offer the broker.
type countingCache struct {
	tls.ClientSessionCache
	offered atomic.Int64
}

func (c *countingCache) Get(key string) (*tls.ClientSessionState, bool) {
	s, ok := c.ClientSessionCache.Get(key)
	if ok && s != nil {
		c.offered.Add(1)
	}
	return s, ok
}

// tlsFacts describes the TLS connection the clients negotiate with the broker.
var tlsFacts string

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func format(f string, v float64) string {
	switch f {
	case fQoS0, fQoS1, fQoS1W:
		return fmt.Sprintf("%.0fk", v/1000)
	case fCPU0, fCPU1, fBrk0, fBrk1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

func printTable(w io.Writer, o options, res *results, libs []benchmarks.Library, transports []string, conf string) {
	base := libs[0]
	var fennec []benchmarks.Library
	var limitRatio []benchmarks.Library // Fennec ÷ limit, on the rows the limit has
	hasLimit := slices.ContainsFunc(libs, func(l benchmarks.Library) bool { return l.Short() == "limit" || l.Short() == "floor" })
	for _, l := range libs[1:] {
		if strings.HasPrefix(l.Short(), "fennec") || l.Short() == benchmarks.Ceiling().Short() {
			fennec = append(fennec, l)
		}
		if hasLimit && strings.HasPrefix(l.Short(), "fennec") {
			limitRatio = append(limitRatio, l)
		}
	}
	fmt.Fprintf(w, "Medians of %d runs; %d messages of %d bytes per throughput burst, %d round trips, %d idle clients.\n\n",
		o.runs, o.n, benchmarks.PayloadSize, o.rtt, o.idle)
	fmt.Fprint(w, "| transport | figure |")
	for _, l := range libs {
		fmt.Fprintf(w, " %s |", l.Name())
	}
	for _, f := range fennec {
		fmt.Fprintf(w, " %s ÷ %s |", f.Short(), base.Short())
	}
	for _, f := range limitRatio {
		fmt.Fprintf(w, " %s ÷ limit (idle rows: ÷ floor) |", f.Short())
	}
	fmt.Fprint(w, " target |\n|---|---|")
	for range len(libs) + len(fennec) + len(limitRatio) + 1 {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w)
	for _, tr := range transports {
		for _, f := range figures {
			fmt.Fprintf(w, "| %s | %s |", strings.ToUpper(tr), f)
			for _, l := range libs {
				k := key{tr, l.Short(), f}
				if len(res.vals[k]) == 0 {
					fmt.Fprint(w, " – |")
					continue
				}
				cell := format(f, median(res.vals[k]))
				if lost := res.lost[k]; lost > 0 {
					cell += fmt.Sprintf(" (%d of %d lost)", lost, res.sent[k])
				}
				fmt.Fprintf(w, " %s |", cell)
			}
			t, hasTarget := targets[f]
			for _, l := range fennec {
				b := median(res.vals[key{tr, base.Short(), f}])
				v := median(res.vals[key{tr, l.Short(), f}])
				cell := "–"
				if b > 0 && len(res.vals[key{tr, l.Short(), f}]) > 0 {
					ratio := v / b
					cell = fmt.Sprintf("%.2f×", ratio)
					if hasTarget && l.Short() != benchmarks.Ceiling().Short() {
						met := ratio >= t.ratio
						if !t.higher {
							met = ratio <= t.ratio
						}
						if met {
							cell += " ✓"
						} else {
							cell += " ✗"
						}
					}
				}
				fmt.Fprintf(w, " %s |", cell)
			}
			for _, l := range limitRatio {
				ref, idleRow := "limit", f == fHeap || f == fLive || f == fGo || f == fStk
				if idleRow {
					ref = "floor" // a lower bound: the ratio says how far above it, no mark
				}
				lim := median(res.vals[key{tr, ref, f}])
				src := f
				if f == fQoS1W {
					src = fQoS1 // the client's QoS 1 rate against the windowed limit
				}
				cell := "–"
				if vs := res.vals[key{tr, l.Short(), src}]; lim > 0 && len(vs) > 0 {
					ratio := median(vs) / lim
					cell = fmt.Sprintf("%.2f×", ratio)
					if idleRow {
						// no mark
					} else if ratio >= 0.9 {
						cell += " ✓"
					} else {
						cell += " ✗"
					}
				}
				fmt.Fprintf(w, " %s |", cell)
			}
			target := "–"
			if hasTarget {
				op := "≥"
				if !t.higher {
					op = "≤"
				}
				target = fmt.Sprintf("%s %.1f×", op, t.ratio)
			}
			fmt.Fprintf(w, " %s |\n", target)
		}
	}
	var reord []string
	for _, tr := range transports {
		for _, l := range libs {
			if n := res.reord[key{tr, l.Short(), fQoS1}]; n > 0 {
				reord = append(reord, fmt.Sprintf("%s %s: %d of %d", l.Short(), strings.ToUpper(tr), n, res.sent[key{tr, l.Short(), fQoS1}]))
			}
		}
	}
	if len(reord) > 0 {
		fmt.Fprintf(w, "\nQoS 1 messages that arrived out of order (all runs): %s.\n", strings.Join(reord, "; "))
	}
	var lost []string
	for _, tr := range transports {
		for _, l := range libs {
			if n := res.connLost[key{tr, l.Short(), ""}]; n > 0 {
				lost = append(lost, fmt.Sprintf("%s %s: %d", l.Short(), strings.ToUpper(tr), n))
			}
		}
	}
	if len(lost) > 0 {
		fmt.Fprintf(w, "\nConnections lost during the measurements (all runs): %s; last cause: %v.\n", strings.Join(lost, "; "), benchmarks.LastFennecLoss())
	}
	if tlsFacts != "" {
		fmt.Fprintf(w, "\nTLS: %s, client certificate required.\n", tlsFacts)
	}
	fmt.Fprintf(w, "\nMachine: %d CPUs (%s; GOMAXPROCS %d), Linux %s, %s %s/%s, %s.\n", runtime.NumCPU(), cpuModel(), runtime.GOMAXPROCS(0),
		kernel(), runtime.Version(), runtime.GOOS, runtime.GOARCH, benchmarks.MosquittoVersion())
	fmt.Fprintf(w, "\nmosquitto.conf (TLS file paths shortened):\n\n```\n%s```\n", shortenPaths(conf))
}

func shortenPaths(conf string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(conf, "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && (k == "cafile" || k == "certfile" || k == "keyfile") {
			line = k + " " + filepath.Base(strings.TrimSpace(v)) + "\n"
		}
		b.WriteString(line)
	}
	return b.String()
}

// childOptions selects what a child process measures: idle clients are measured in a fresh
// process each time, so the heap figures do not depend on what ran before.
type childOptions struct{ lib, addr, pkiDir, heapProfile string }

func idleInChild(ctx context.Context, c childOptions, o options) (benchmarks.IdleResult, error) {
	var r benchmarks.IdleResult
	exe, err := os.Executable()
	if err != nil {
		return r, err
	}
	args := []string{"-idle-child", c.lib, "-idle-child-addr", c.addr, "-idle", fmt.Sprint(o.idle), "-parallel", fmt.Sprint(o.parallel)}
	if c.pkiDir != "" {
		args = append(args, "-idle-child-pki", c.pkiDir)
	}
	if c.heapProfile != "" {
		args = append(args, "-idle-child-heap", c.heapProfile)
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return r, fmt.Errorf("child process: %w", err)
	}
	return r, json.Unmarshal(out, &r)
}

func runIdleChild(c childOptions, o options) error {
	if _, err := benchmarks.RaiseFileLimit(); err != nil {
		return err
	}
	lib := libByName(c.lib)
	if lib == nil {
		return fmt.Errorf("unknown library %q", c.lib)
	}
	ep := benchmarks.Endpoint{Addr: c.addr}
	if c.pkiDir != "" {
		p, err := benchmarks.LoadPKI(c.pkiDir)
		if err != nil {
			return err
		}
		ep.TLS = p.Client
	}
	var during func()
	if c.heapProfile != "" {
		runtime.MemProfileRate = 1 // every allocation: a per-connection figure of a few KiB needs it
		during = func() {
			if f, err := os.Create(c.heapProfile); err == nil {
				pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := benchmarks.MeasureIdle(ctx, lib, ep, o.idle, o.parallel, during)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}
