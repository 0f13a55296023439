package brokertest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

// Options configures Start. The zero value gives a plain TCP listener and a TLS 1.3 listener that
// requires client certificates, both on free loopback ports, with no ACL.
type Options struct {
	// Clients are the client certificate common names to issue; zero: "fennec-client".
	Clients []string
	// TLSMinVersion is the TLS listener's minimum version; zero: TLS 1.3.
	TLSMinVersion uint16
	// OptionalClientCert makes the TLS listener accept clients without a certificate.
	OptionalClientCert bool
	// WebSockets adds ws:// and wss:// listeners (wss with the same client-certificate rule).
	WebSockets bool
	ACL        *broker.ACL
	// AWS turns on the AWS IoT Core emulation; the certificates of AWSDevices (client common
	// names, which become the thing names) are registered. Zero AWSDevices registers all clients.
	AWS        *broker.AWS
	AWSDevices []string
	// FleetProvisioning makes the test CA the issuer of Fleet Provisioning's certificates
	// (AWS.Issuer), with AWS.
	FleetProvisioning bool
	// SCRAM are users of MQTT 5 enhanced authentication with SCRAM-SHA-256 (broker.Options.SCRAM).
	SCRAM map[string]string
	// Logger; nil: the broker's logs go to t.Log at debug level, and to LogCopy when set.
	Logger *slog.Logger
	// LogCopy, when set and Logger is nil, also receives every log line (text, debug level), so
	// that a test can wait for what the broker logged; it must be safe for concurrent writes.
	LogCopy io.Writer
}

// Broker is a running test broker.
type Broker struct {
	*broker.Broker
	PKI   *devpki.PKI
	Files devpki.Files
	// Addresses (host:port); WSAddr and WSSAddr are empty without Options.WebSockets.
	TCPAddr, TLSAddr, WSAddr, WSSAddr string
	// CAFile, ClientCert and ClientKey are the PEM files of the CA and of the first client.
	CAFile, ClientCert, ClientKey string
}

// Start starts a broker and registers its Close with t.Cleanup. It fails the test on error.
func Start(t testing.TB, opts Options) *Broker {
	t.Helper()
	p, err := devpki.Generate(devpki.Options{Clients: opts.Clients})
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	files, err := p.WriteDir(t.TempDir())
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	cert, err := tls.X509KeyPair(p.Server.CertPEM, p.Server.KeyPEM)
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.CA.Cert)
	tlsOpts := &broker.TLS{Certificate: &cert, ClientCAs: pool, RequireClientCert: !opts.OptionalClientCert, MinVersion: opts.TLSMinVersion}
	ls := []broker.Listener{{URL: "tcp://127.0.0.1:0"}, {URL: "tls://127.0.0.1:0", TLS: tlsOpts}}
	if opts.WebSockets {
		ls = append(ls, broker.Listener{URL: "ws://127.0.0.1:0"}, broker.Listener{URL: "wss://127.0.0.1:0", TLS: tlsOpts})
	}
	log := opts.Logger
	if log == nil {
		tw := &tWriter{t: t}
		t.Cleanup(tw.stop) // registered before the broker's Close: runs after it
		var w io.Writer = tw
		if opts.LogCopy != nil {
			w = io.MultiWriter(w, opts.LogCopy)
		}
		log = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.AWS != nil {
		aws := *opts.AWS
		names := opts.AWSDevices
		if len(names) == 0 {
			names = p.ClientNames
		}
		for _, cn := range names {
			c, ok := p.Clients[cn]
			if !ok {
				t.Fatalf("brokertest: AWS device %q is not among Options.Clients", cn)
			}
			aws.Devices = append(aws.Devices, broker.Device{ThingName: cn, Certificate: c.Cert})
		}
		if opts.FleetProvisioning {
			aws.Issuer = p.CA
		}
		opts.AWS = &aws
	}
	b, err := broker.New(broker.Options{Listeners: ls, Logger: log, ACL: opts.ACL, AWS: opts.AWS, SCRAM: opts.SCRAM})
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	tb := &Broker{Broker: b, PKI: p, Files: files, CAFile: files.CA}
	tb.ClientCert, tb.ClientKey = files.FirstClient(p)
	for _, l := range b.Listeners() {
		switch l.Scheme {
		case "tcp":
			tb.TCPAddr = l.Addr
		case "tls":
			tb.TLSAddr = l.Addr
		case "ws":
			tb.WSAddr = l.Addr
		case "wss":
			tb.WSSAddr = l.Addr
		}
	}
	return tb
}

// ClientTLSConfig returns a client configuration trusting the test CA and presenting the
// certificate of the client cn ("" for none), with ServerName "localhost".
func (b *Broker) ClientTLSConfig(cn string) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(b.PKI.CA.Cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if cn != "" {
		c, ok := b.PKI.Clients[cn]
		if !ok {
			panic("brokertest: no client certificate " + cn)
		}
		pair, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
		if err != nil {
			panic(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

// tWriter sends log lines to t.Log until the test's cleanup stops it; later lines (from a
// goroutine of the broker that outlives Close) are dropped. Calling t.Log after the test has
// completed is a data race with its completion, and a panic.
type tWriter struct {
	t       testing.TB
	mu      sync.Mutex
	stopped bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Helper()
		w.t.Log(string(p[:len(p)-1]))
	}
	return len(p), nil
}

func (w *tWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}
