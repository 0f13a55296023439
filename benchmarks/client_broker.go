package benchmarks

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fennec-mqtt/fennec/pki/devpki"
)

// BrokerOptions configures the mosquitto the client comparison runs against.
//
// The settings are chosen so that the broker never hides a client's behaviour:
//
//   - max_queued_messages 0 (no limit): with mosquitto's default of 1000 a fast QoS 1 burst is
//     dropped at the broker while the publisher still receives every PUBACK, so the count at the
//     subscriber would measure the broker's queue, not the client.
//   - max_inflight_messages (default 20, mosquitto's own default): the number of QoS 1 messages
//     the broker keeps unacknowledged towards one subscriber. It is stated in every result because
//     it bounds the QoS 1 delivery window for all clients alike.
//   - set_tcp_nodelay true (what the comparison uses; NoDelay false is the stock broker): the broker sends each packet at once instead of letting Nagle's
//     algorithm wait for the client's delayed ACK. Without it every TLS connect stalls about 40 ms
//     and one-at-a-time round trips measure the kernel's delayed-ACK timer instead of the client.
//     It is the same for every client, so ratios stay fair.
//   - max_connections -1 on both listeners, for the 1,000 idle clients.
type BrokerOptions struct {
	MaxInflight int  // max_inflight_messages; zero: 20
	NoDelay     bool // set_tcp_nodelay
	// PKI enables the TLS 1.3 listener (client certificates required) when non-nil.
	PKI *PKI
}

// Broker is a running mosquitto on loopback.
type Broker struct {
	Addr    string // plain MQTT listener, host:port
	TLSAddr string // TLS 1.3 listener with client certificates, when PKI was given
	Conf    string // the mosquitto.conf it runs with

	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
	mu     sync.Mutex
	log    bytes.Buffer
}

// PKI is a development PKI written to disk for mosquitto, with a client TLS configuration.
type PKI struct {
	Files devpki.Files
	// Client is a TLS 1.3 client configuration: the development CA as root, the client
	// certificate, ServerName "localhost". Clone it before changing it.
	Client *tls.Config
	dir    string
}

// NewPKI generates a fresh development PKI (ECDSA P-256) in a temporary directory.
func NewPKI() (*PKI, error) {
	p, err := devpki.Generate(devpki.Options{})
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "fennec-bench-pki-")
	if err != nil {
		return nil, err
	}
	files, err := p.WriteDir(filepath.Join(dir, "pki"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cert, err := tls.X509KeyPair(p.Client().CertPEM, p.Client().KeyPEM)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.CA.Cert)
	return &PKI{
		Files: files,
		Client: &tls.Config{
			RootCAs:      pool,
			Certificates: []tls.Certificate{cert},
			ServerName:   "localhost",
			MinVersion:   tls.VersionTLS13,
		},
		dir: dir,
	}, nil
}

// Close removes the PKI's files.
func (p *PKI) Close() error {
	if p.dir == "" {
		return nil // loaded by LoadPKI: not ours to remove
	}
	return os.RemoveAll(p.dir)
}

// LoadPKI reads a PKI that NewPKI wrote into Files.Dir (for a child process).
func LoadPKI(dir string) (*PKI, error) {
	p, files, err := devpki.LoadDir(dir, nil)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(p.Client().CertPEM, p.Client().KeyPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.CA.Cert)
	return &PKI{Files: files, Client: &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "localhost", MinVersion: tls.VersionTLS13,
	}}, nil
}

// MosquittoPath returns the mosquitto binary, or "" when it is not installed.
func MosquittoPath() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// ErrNoMosquitto is returned by StartBroker when mosquitto is not installed.
var ErrNoMosquitto = errors.New("benchmarks: mosquitto is not installed (make deps installs it)")

// MosquittoVersion returns mosquitto's version line, e.g. "mosquitto version 2.0.11".
func MosquittoVersion() string {
	bin := MosquittoPath()
	if bin == "" {
		return "not installed"
	}
	out, _ := exec.Command(bin, "-h").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// RaiseFileLimit raises RLIMIT_NOFILE to its hard limit (mosquitto, started as a child, inherits
// it) and returns the new soft limit.
func RaiseFileLimit() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	r.Cur = r.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	return r.Cur, nil
}

// StartBroker starts mosquitto on free loopback ports and waits until it accepts connections.
func StartBroker(o BrokerOptions) (*Broker, error) {
	bin := MosquittoPath()
	if bin == "" {
		return nil, ErrNoMosquitto
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		b, err := startBroker(bin, o)
		if err == nil {
			return b, nil
		}
		lastErr = err // most likely a port taken between freePort and bind
	}
	return nil, fmt.Errorf("benchmarks: mosquitto did not start: %w", lastErr)
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p, nil
}

func startBroker(bin string, o BrokerOptions) (*Broker, error) {
	dir, err := os.MkdirTemp("", "fennec-bench-mosquitto-")
	if err != nil {
		return nil, err
	}
	inflight := o.MaxInflight
	if inflight == 0 {
		inflight = 20
	}
	p1, err := freePort()
	if err != nil {
		return nil, err
	}
	b := &Broker{dir: dir, Addr: "127.0.0.1:" + p1, exited: make(chan struct{})}
	var c strings.Builder
	c.WriteString("per_listener_settings false\nallow_anonymous true\npersistence false\n")
	c.WriteString("log_dest stdout\nlog_type error\nlog_type warning\n")
	if os.Geteuid() == 0 {
		// Started as root, mosquitto switches to the user "mosquitto" and could not read the keys.
		c.WriteString("user root\n")
	}
	c.WriteString("max_queued_messages 0\n")
	fmt.Fprintf(&c, "max_inflight_messages %d\n", inflight)
	fmt.Fprintf(&c, "set_tcp_nodelay %t\n", o.NoDelay)
	fmt.Fprintf(&c, "listener %s 127.0.0.1\nmax_connections -1\n", p1)
	if o.PKI != nil {
		p2, err := freePort()
		if err != nil {
			return nil, err
		}
		b.TLSAddr = "127.0.0.1:" + p2
		f := o.PKI.Files
		fmt.Fprintf(&c, "listener %s 127.0.0.1\nmax_connections -1\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\ntls_version tlsv1.3\n",
			p2, f.CA, f.ServerCert, f.ServerKey)
	}
	b.Conf = c.String()
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(b.Conf), 0o600); err != nil {
		return nil, err
	}
	b.cmd = exec.Command(bin, "-c", confPath)
	b.cmd.Stdout, b.cmd.Stderr = logWriter{b}, logWriter{b}
	if err := b.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go func() { b.cmd.Wait(); close(b.exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for _, a := range []string{b.Addr, b.TLSAddr} {
		if a == "" {
			continue
		}
		for {
			select {
			case <-b.exited:
				os.RemoveAll(dir)
				return nil, fmt.Errorf("benchmarks: mosquitto exited: %s", b.Log())
			default:
			}
			conn, err := net.DialTimeout("tcp", a, 200*time.Millisecond)
			if err == nil {
				conn.Close()
				break
			}
			if time.Now().After(deadline) {
				b.Close()
				return nil, fmt.Errorf("benchmarks: mosquitto not listening on %s: %s", a, b.Log())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return b, nil
}

type logWriter struct{ b *Broker }

func (w logWriter) Write(p []byte) (int, error) {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	if w.b.log.Len() < 1<<20 {
		w.b.log.Write(p)
	}
	return len(p), nil
}

// Log returns what mosquitto has written so far (errors and warnings).
func (b *Broker) Log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.String()
}

// Close stops mosquitto and removes its directory.
func (b *Broker) Close() error {
	b.cmd.Process.Kill()
	<-b.exited
	return os.RemoveAll(b.dir)
}

// Endpoint returns where a client connects: the plain or the TLS listener.
func (b *Broker) Endpoint(useTLS bool, p *PKI) Endpoint {
	if useTLS {
		return Endpoint{Addr: b.TLSAddr, TLS: p.Client, BrokerPID: b.cmd.Process.Pid}
	}
	return Endpoint{Addr: b.Addr, BrokerPID: b.cmd.Process.Pid}
}

// TLSFacts connects to the TLS listener once and describes the negotiated TLS version, cipher
// suite and key exchange group.
func (b *Broker) TLSFacts(p *PKI) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", b.TLSAddr, p.Client)
	if err != nil {
		return "", err
	}
	defer c.Close()
	st := c.ConnectionState()
	return fmt.Sprintf("%s, %s, %v", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), st.CurveID), nil
}
