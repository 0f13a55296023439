package faultproxy

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Fault is one kind of network fault.
type Fault int

const (
	Drop     Fault = iota // close both sides with FIN
	Reset                 // close both sides with RST
	Stall                 // stop forwarding for a while, then go on
	Delay                 // add latency to every chunk for a while
	Truncate              // forward part of the next chunk, then reset
	HalfOpen              // stop forwarding for good, keep the sockets open
	nFaults
)

func (f Fault) String() string {
	return [...]string{"drop", "reset", "stall", "delay", "truncate", "half-open"}[f]
}

// Proxy forwards connections from Addr to a target.
type Proxy struct {
	Addr   string
	target string
	l      net.Listener
	rng    *rand.Rand
	logf   func(format string, args ...any)

	mu     sync.Mutex
	links  map[*link]bool
	delay  time.Duration
	n      int // faults injected
	counts [nFaults]int
	wg     sync.WaitGroup
}

type link struct {
	client, broker *net.TCPConn
	mu             sync.Mutex
	stalledUntil   time.Time
	halfOpen       bool
	truncate       bool
	closed         bool
}

// Start listens on a loopback port and forwards to target. seed fixes the fault sequence; logf
// (t.Logf) receives one line per fault.
func Start(target string, seed uint64, logf func(string, ...any)) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: l.Addr().String(), target: target, l: l, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		logf: logf, links: map[*link]bool{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		b, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		lk := &link{client: c.(*net.TCPConn), broker: b.(*net.TCPConn)}
		p.mu.Lock()
		p.links[lk] = true
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(lk, lk.client, lk.broker)
		go p.pipe(lk, lk.broker, lk.client)
	}
}

// pipe copies src to dst in chunks, applying the link's faults.
func (p *Proxy) pipe(lk *link, src, dst *net.TCPConn) {
	defer p.wg.Done()
	defer p.closeLink(lk, false)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			for {
				lk.mu.Lock()
				until, half, closed := lk.stalledUntil, lk.halfOpen, lk.closed
				lk.mu.Unlock()
				if closed {
					return
				}
				if half || time.Now().Before(until) {
					time.Sleep(5 * time.Millisecond) // hold the bytes
					continue
				}
				break
			}
			p.mu.Lock()
			d := p.delay
			p.mu.Unlock()
			if d > 0 {
				time.Sleep(d)
			}
			lk.mu.Lock()
			trunc := lk.truncate
			lk.truncate = false
			lk.mu.Unlock()
			if trunc {
				dst.Write(buf[:max(1, n/2)])
				p.closeLink(lk, true)
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err == io.EOF {
				dst.CloseWrite()
			}
			return
		}
	}
}

func (p *Proxy) closeLink(lk *link, rst bool) {
	lk.mu.Lock()
	if lk.closed {
		lk.mu.Unlock()
		return
	}
	lk.closed = true
	lk.mu.Unlock()
	if rst {
		lk.client.SetLinger(0)
		lk.broker.SetLinger(0)
	}
	lk.client.Close()
	lk.broker.Close()
	p.mu.Lock()
	delete(p.links, lk)
	p.mu.Unlock()
}

func (p *Proxy) current() []*link {
	p.mu.Lock()
	defer p.mu.Unlock()
	ls := make([]*link, 0, len(p.links))
	for lk := range p.links {
		ls = append(ls, lk)
	}
	return ls
}

// Inject applies fault f to every current connection. Stall and Delay last for d.
func (p *Proxy) Inject(f Fault, d time.Duration) {
	p.mu.Lock()
	p.n++
	p.counts[f]++
	n := p.n
	p.mu.Unlock()
	if p.logf != nil {
		p.logf("fault %d: %v (%v)", n, f, d)
	}
	switch f {
	case Drop, Reset:
		for _, lk := range p.current() {
			p.closeLink(lk, f == Reset)
		}
	case Stall:
		for _, lk := range p.current() {
			lk.mu.Lock()
			lk.stalledUntil = time.Now().Add(d)
			lk.mu.Unlock()
		}
	case Delay:
		p.mu.Lock()
		p.delay = time.Millisecond
		p.mu.Unlock()
		time.AfterFunc(d, func() {
			p.mu.Lock()
			p.delay = 0
			p.mu.Unlock()
		})
	case Truncate:
		for _, lk := range p.current() {
			lk.mu.Lock()
			lk.truncate = true
			lk.mu.Unlock()
		}
	case HalfOpen:
		for _, lk := range p.current() {
			lk.mu.Lock()
			lk.halfOpen = true
			lk.mu.Unlock()
		}
	}
}

// Random injects a fault drawn from the seeded source among kinds (all kinds when empty), with
// a duration up to maxD for Stall and Delay, and returns it.
func (p *Proxy) Random(maxD time.Duration, kinds ...Fault) Fault {
	p.mu.Lock()
	if len(kinds) == 0 {
		kinds = []Fault{Drop, Reset, Stall, Delay, Truncate, HalfOpen}
	}
	f := kinds[p.rng.IntN(len(kinds))]
	d := time.Duration(p.rng.Int64N(int64(maxD) + 1))
	p.mu.Unlock()
	p.Inject(f, d)
	return f
}

// Intn draws from the proxy's seeded source (for a test's own schedule).
func (p *Proxy) Intn(n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.IntN(n)
}

// Counts returns how many faults of each kind were injected, as "drop 3, reset 2, …".
func (p *Proxy) Counts() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := ""
	for f := Fault(0); f < nFaults; f++ {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("%v %d", f, p.counts[f])
	}
	return s
}

// Close stops accepting, closes every connection and waits for the forwarding goroutines.
func (p *Proxy) Close() {
	p.l.Close()
	for _, lk := range p.current() {
		p.closeLink(lk, false)
	}
	p.wg.Wait()
}
