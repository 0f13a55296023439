package benchmarks

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// processCPU returns this process's user + system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// switches counts context switches: voluntary (the thread slept: it waited for something)
// and involuntary (it was preempted: something else took its CPU).
type switches struct{ Vol, Invol int64 }

func (a switches) sub(b switches) switches { return switches{a.Vol - b.Vol, a.Invol - b.Invol} }

// goroutinesCreated returns how many goroutines this process has started.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// processSwitches returns this process's context switches, all threads together.
func processSwitches() switches {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return switches{}
	}
	return switches{ru.Nvcsw, ru.Nivcsw}
}

// brokerSwitches returns the context switches of process pid's main thread from /proc (Linux;
// mosquitto has one thread), or ok false when unknown.
func brokerSwitches(pid int) (sw switches, ok bool) {
	if pid == 0 {
		return sw, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return sw, false
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		k, v, found := strings.Cut(line, ":")
		if !found {
			continue
		}
		x, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "voluntary_ctxt_switches":
			sw.Vol, n = x, n+1
		case "nonvoluntary_ctxt_switches":
			sw.Invol, n = x, n+1
		}
	}
	return sw, n == 2
}

// brokerCPU returns the user + system CPU time of process pid from /proc (Linux, 10 ms
// resolution), or -1 when unknown.
func brokerCPU(pid int) time.Duration {
	if pid == 0 {
		return -1
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks
}

// Endpoint is where a client under test connects.
type Endpoint struct {
	Addr string      // host:port
	TLS  *tls.Config // nil: plain TCP
	// BrokerPID, when not zero, is the broker's process, whose CPU time throughput runs report.
	BrokerPID int
}

// Library is one MQTT client library in the comparison.
type Library interface {
	Name() string  // name and version, for tables
	Short() string // a short name for benchmark names and flags
	// Connect returns a connected client with a clean session and a 60 s keepalive.
	Connect(ctx context.Context, ep Endpoint, clientID string) (Conn, error)
}

// Conn is one connected client. Each Library implements it the way its documentation intends
// the library to be used for the job.
type Conn interface {
	// Subscribe subscribes to topic; h receives each payload (it must not keep it).
	Subscribe(ctx context.Context, topic string, qos byte, h func(payload []byte)) error
	// PublishBurst publishes n messages as fast as the library allows and returns when all are
	// complete: written for QoS 0, acknowledged by PUBACK for QoS 1.
	PublishBurst(ctx context.Context, topic string, qos byte, n int, payload func(i int) []byte) error
	// Publish publishes one message and returns when it is complete.
	Publish(ctx context.Context, topic string, qos byte, payload []byte) error
	Close() error
}

// PayloadSize is the payload of every benchmark message.
const PayloadSize = 64

// Payload returns the 64-byte payload of message i: its sequence number, then filler.
func Payload(i int) []byte {
	p := make([]byte, PayloadSize)
	binary.BigEndian.PutUint64(p, uint64(i))
	for j := 8; j < len(p); j++ {
		p[j] = 'x'
	}
	return p
}

func seqOf(p []byte) int {
	if len(p) < 8 {
		return -1
	}
	return int(binary.BigEndian.Uint64(p))
}

func randID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ThroughputResult is what one publisher → broker → subscriber burst achieved.
type ThroughputResult struct {
	Sent      int
	Received  int // distinct messages that arrived at the subscriber
	Dups      int // arrivals of a message already received
	Reordered int // arrivals with a lower sequence number than the one before
	// Elapsed runs from the first publish to the last arrival at the subscriber.
	Elapsed time.Duration
	// PublishDone runs from the first publish to the publisher's last completion.
	PublishDone time.Duration
	// ClientCPU is this process's CPU time (user + system, publisher and subscriber together)
	// from the first publish to the end, and BrokerCPU the broker's, when known.
	ClientCPU, BrokerCPU time.Duration
	// Allocs and AllocBytes are this process's heap allocations over the same time.
	Allocs, AllocBytes uint64
	// ClientSwitches and BrokerSwitches are the context switches of this process and of the
	// broker over the same time (BrokerSwitches zero when unknown). On a machine with fewer
	// cores than busy threads, a client whose threads sleep and wake often preempts the
	// broker: the broker's involuntary switches tell it.
	ClientSwitches, BrokerSwitches switches
	// Goroutines is how many goroutines this process started over the same time.
	Goroutines uint64
}

// PerMsgSwitches returns sw per message received.
func (r ThroughputResult) PerMsgSwitches(sw switches) (vol, invol float64) {
	if r.Received == 0 {
		return 0, 0
	}
	return float64(sw.Vol) / float64(r.Received), float64(sw.Invol) / float64(r.Received)
}

// PerMsg divides d by the messages received.
func (r ThroughputResult) PerMsg(d time.Duration) time.Duration {
	if r.Received == 0 {
		return 0
	}
	return d / time.Duration(r.Received)
}

// Rate is distinct messages received per second.
func (r ThroughputResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Received) / r.Elapsed.Seconds()
}

// Lost is how many published messages never arrived.
func (r ThroughputResult) Lost() int { return r.Sent - r.Received }

type arrivals struct {
	mu        sync.Mutex
	seen      []uint64
	received  int
	dups      int
	reordered int
	last      int
	lastAt    time.Time
	n         int
	done      chan struct{}
}

func newArrivals(n int) *arrivals {
	return &arrivals{seen: make([]uint64, (n+63)/64), last: -1, n: n, done: make(chan struct{})}
}

func (a *arrivals) add(p []byte) {
	now := time.Now()
	s := seqOf(p)
	a.mu.Lock()
	defer a.mu.Unlock()
	if s < 0 || s >= a.n {
		return
	}
	if s < a.last {
		a.reordered++
	}
	a.last = s
	if a.seen[s/64]&(1<<(s%64)) != 0 {
		a.dups++
		return
	}
	a.seen[s/64] |= 1 << (s % 64)
	a.received++
	a.lastAt = now
	if a.received == a.n {
		close(a.done)
	}
}

// IdleTimeout is how long a throughput run waits without any arrival before it counts the
// missing messages as lost.
var IdleTimeout = 2 * time.Second

// MeasureThroughput connects a subscriber and a publisher of lib, publishes n messages of 64 bytes
// at qos (the subscription has the same QoS) and counts what arrives.
func MeasureThroughput(ctx context.Context, lib Library, ep Endpoint, qos byte, n int) (ThroughputResult, error) {
	return MeasureThroughputWith(ctx, lib, lib, ep, qos, n)
}

// MeasureThroughputWith is MeasureThroughput with the subscriber from another library: with
// the same subscriber for every publisher, a difference is the publisher's (and the other way
// round).
func MeasureThroughputWith(ctx context.Context, lib, subLib Library, ep Endpoint, qos byte, n int) (ThroughputResult, error) {
	res := ThroughputResult{Sent: n}
	id := randID()
	topic := "bench/tput/" + id
	sub, err := subLib.Connect(ctx, ep, "s-"+id)
	if err != nil {
		return res, fmt.Errorf("benchmarks: %s subscriber: %w", subLib.Short(), err)
	}
	defer sub.Close()
	arr := newArrivals(n)
	if err := sub.Subscribe(ctx, topic, qos, arr.add); err != nil {
		return res, fmt.Errorf("benchmarks: %s subscribe: %w", subLib.Short(), err)
	}
	pub, err := lib.Connect(ctx, ep, "p-"+id)
	if err != nil {
		return res, fmt.Errorf("benchmarks: %s publisher: %w", lib.Short(), err)
	}
	defer pub.Close()

	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0, bcpu0 := processCPU(), brokerCPU(ep.BrokerPID)
	sw0, g0 := processSwitches(), goroutinesCreated()
	bsw0, bswOK := brokerSwitches(ep.BrokerPID)
	start := time.Now()
	pubErr := make(chan error, 1)
	var pubDone atomic.Int64
	go func() {
		err := pub.PublishBurst(ctx, topic, qos, n, Payload)
		pubDone.Store(int64(time.Since(start)))
		pubErr <- err
	}()
	var perr error
	published := false
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-arr.done:
			break wait
		case perr = <-pubErr:
			published = true
			if perr != nil {
				break wait
			}
		case <-tick.C:
			arr.mu.Lock()
			last := arr.lastAt
			arr.mu.Unlock()
			if last.IsZero() {
				last = start
			}
			if published && time.Since(last) > IdleTimeout {
				break wait
			}
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	if !published {
		select {
		case perr = <-pubErr:
		case <-time.After(30 * time.Second):
			perr = errors.New("benchmarks: publisher did not complete 30 s after the last arrival")
		}
	}
	arr.mu.Lock()
	res.Received, res.Dups, res.Reordered = arr.received, arr.dups, arr.reordered
	if !arr.lastAt.IsZero() {
		res.Elapsed = arr.lastAt.Sub(start)
	}
	arr.mu.Unlock()
	res.PublishDone = time.Duration(pubDone.Load())
	res.ClientCPU = processCPU() - cpu0
	res.ClientSwitches = processSwitches().sub(sw0)
	res.Goroutines = goroutinesCreated() - g0
	if bsw1, ok := brokerSwitches(ep.BrokerPID); ok && bswOK {
		res.BrokerSwitches = bsw1.sub(bsw0)
	}
	if bcpu0 >= 0 {
		res.BrokerCPU = brokerCPU(ep.BrokerPID) - bcpu0
	}
	runtime.ReadMemStats(&ms1)
	res.Allocs, res.AllocBytes = ms1.Mallocs-ms0.Mallocs, ms1.TotalAlloc-ms0.TotalAlloc
	if perr != nil {
		return res, fmt.Errorf("benchmarks: %s publish: %w", lib.Short(), perr)
	}
	return res, nil
}

// MeasureConnects connects and closes n clients one after the other (CONNECT, CONNACK,
// DISCONNECT; over TLS a full handshake each, no session resumption) and returns connects per
// second.
func MeasureConnects(ctx context.Context, lib Library, ep Endpoint, n int) (float64, error) {
	id := randID()
	start := time.Now()
	for i := 0; i < n; i++ {
		c, err := lib.Connect(ctx, ep, fmt.Sprintf("c-%s-%d", id, i))
		if err != nil {
			return 0, fmt.Errorf("benchmarks: %s connect %d: %w", lib.Short(), i, err)
		}
		if err := c.Close(); err != nil {
			return 0, fmt.Errorf("benchmarks: %s close %d: %w", lib.Short(), i, err)
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// LatencyResult holds QoS 1 publish → arrival round trips, one message at a time.
type LatencyResult struct {
	Samples []time.Duration // sorted
}

// Quantile returns the q-quantile (0..1) of the samples.
func (r LatencyResult) Quantile(q float64) time.Duration {
	if len(r.Samples) == 0 {
		return 0
	}
	i := int(q*float64(len(r.Samples)) + 0.5)
	if i >= len(r.Samples) {
		i = len(r.Samples) - 1
	}
	return r.Samples[i]
}

// MeasureLatency publishes warmup+n QoS 1 messages one at a time; each sample runs from the
// start of Publish to the subscriber's handler receiving the message. The next message is sent
// only when the previous one has arrived and the publisher has its PUBACK.
func MeasureLatency(ctx context.Context, lib Library, ep Endpoint, n, warmup int) (LatencyResult, error) {
	var res LatencyResult
	id := randID()
	topic := "bench/rtt/" + id
	sub, err := lib.Connect(ctx, ep, "s-"+id)
	if err != nil {
		return res, fmt.Errorf("benchmarks: %s subscriber: %w", lib.Short(), err)
	}
	defer sub.Close()
	type arrival struct {
		seq int
		at  time.Time
	}
	ch := make(chan arrival, 64)
	if err := sub.Subscribe(ctx, topic, 1, func(p []byte) {
		a := arrival{seqOf(p), time.Now()}
		select {
		case ch <- a:
		default:
		}
	}); err != nil {
		return res, fmt.Errorf("benchmarks: %s subscribe: %w", lib.Short(), err)
	}
	pub, err := lib.Connect(ctx, ep, "p-"+id)
	if err != nil {
		return res, fmt.Errorf("benchmarks: %s publisher: %w", lib.Short(), err)
	}
	defer pub.Close()
	res.Samples = make([]time.Duration, 0, n)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i := 0; i < warmup+n; i++ {
		p := Payload(i)
		t0 := time.Now()
		if err := pub.Publish(ctx, topic, 1, p); err != nil {
			return res, fmt.Errorf("benchmarks: %s publish %d: %w", lib.Short(), i, err)
		}
		timer.Reset(5 * time.Second)
	recv:
		for {
			select {
			case a := <-ch:
				if a.seq == i {
					if i >= warmup {
						res.Samples = append(res.Samples, a.at.Sub(t0))
					}
					break recv
				}
			case <-timer.C:
				return res, fmt.Errorf("benchmarks: %s: message %d did not arrive within 5 s", lib.Short(), i)
			case <-ctx.Done():
				return res, ctx.Err()
			}
		}
	}
	slices.Sort(res.Samples)
	return res, nil
}

// IdleResult is the cost of idle connected clients in this process.
type IdleResult struct {
	Clients int
	// HeapPerConn is runtime.MemStats.HeapInuse after GC, minus the same before connecting,
	// divided by Clients, in bytes.
	HeapPerConn float64
	// LivePerConn is the same for HeapAlloc (bytes of live objects), which does not depend on
	// how full the heap's spans were before.
	LivePerConn float64
	// StackPerConn is the same for StackInuse (goroutine stacks are not part of the heap).
	StackPerConn      float64
	GoroutinesPerConn float64
	ConnectTime       time.Duration // to connect all clients, Parallel at a time
}

func gcStats() (heap, live, stack uint64, goroutines int) {
	var ms runtime.MemStats
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.HeapAlloc, ms.StackInuse, runtime.NumGoroutine()
}

// MeasureIdle connects n clients of lib, parallel at a time, lets them settle, and measures the
// heap, stack and goroutines they hold. Nothing else may run in the process meanwhile. When
// during is not nil it runs after the measurement, while the clients are still connected (to
// write a heap profile, for instance).
func MeasureIdle(ctx context.Context, lib Library, ep Endpoint, n, parallel int, during func()) (IdleResult, error) {
	res := IdleResult{Clients: n}
	if parallel < 1 {
		parallel = 1
	}
	id := randID()
	h0, l0, s0, g0 := gcStats()
	conns := make([]Conn, n)
	start := time.Now()
	var wg sync.WaitGroup
	var firstErr error
	var errMu sync.Mutex
	sem := make(chan struct{}, parallel)
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			c, err := lib.Connect(ctx, ep, fmt.Sprintf("i-%s-%d", id, i))
			if err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("benchmarks: %s client %d: %w", lib.Short(), i, err)
				}
				errMu.Unlock()
				return
			}
			conns[i] = c
		}(i)
	}
	wg.Wait()
	res.ConnectTime = time.Since(start)
	closeAll := func() {
		var cw sync.WaitGroup
		for _, c := range conns {
			if c == nil {
				continue
			}
			sem <- struct{}{}
			cw.Add(1)
			go func(c Conn) {
				defer func() { <-sem; cw.Done() }()
				c.Close()
			}(c)
		}
		cw.Wait()
	}
	if firstErr != nil {
		closeAll()
		return res, firstErr
	}
	// Let the connect-time goroutines and buffers go away.
	time.Sleep(min(500*time.Millisecond, 50*time.Millisecond+time.Duration(n)*time.Millisecond/2))
	h1, l1, s1, g1 := gcStats()
	runtime.KeepAlive(conns)
	res.HeapPerConn = (float64(h1) - float64(h0)) / float64(n)
	res.LivePerConn = (float64(l1) - float64(l0)) / float64(n)
	res.StackPerConn = (float64(s1) - float64(s0)) / float64(n)
	res.GoroutinesPerConn = float64(g1-g0) / float64(n)
	if during != nil {
		during()
	}
	closeAll()
	return res, nil
}
