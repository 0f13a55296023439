package mosquittotest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TLS configures the TLS listener.
type TLS struct {
	CAFile, CertFile, KeyFile string
	// RequireCertificate makes the broker demand a client certificate signed by CAFile.
	RequireCertificate bool
	// UseIdentityAsUsername takes the username from the client certificate's CN.
	UseIdentityAsUsername bool
	// Version is mosquitto's tls_version, a minimum: "tlsv1.2" or "tlsv1.3"; empty: mosquitto's default.
	Version string
}

// Options configures Start. The zero value is one plain listener with anonymous access.
type Options struct {
	TLS *TLS
	// Config holds extra lines for mosquitto.conf (global section, before the listeners).
	Config []string
	// WebSockets adds a plain WebSocket listener.
	WebSockets bool
	// Quiet keeps only warnings and errors in the log (no line per connection), for tests that
	// measure their own memory over many connections.
	Quiet bool
}

// Broker is a running mosquitto.
type Broker struct {
	Addr    string // host:port of the plain MQTT listener
	TLSAddr string // host:port of the TLS listener, when configured
	WSAddr  string // host:port of the WebSocket listener, when configured
	Dir     string // working directory holding mosquitto.conf

	bin, confPath string
	mu            sync.Mutex
	log           bytes.Buffer
	cmd           *exec.Cmd
	exited        chan struct{}
}

// Log returns what mosquitto has written so far.
func (b *Broker) Log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.String()
}

type lockedWriter struct{ b *Broker }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	return w.b.log.Write(p)
}

// Path returns the mosquitto binary, or "" when it is not installed.
func Path() string {
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

// Require fails (or, with FENNEC_SKIP_MOSQUITTO=1, skips) the test when mosquitto or the named
// client tools are missing, and returns the broker binary's path.
func Require(t testing.TB, tools ...string) string {
	t.Helper()
	missing := func(what string) {
		if os.Getenv("FENNEC_SKIP_MOSQUITTO") == "1" {
			t.Skipf("%s not installed (FENNEC_SKIP_MOSQUITTO=1)", what)
		}
		t.Fatalf("%s is not installed: run `make test`, which installs mosquitto and mosquitto-clients, or set FENNEC_SKIP_MOSQUITTO=1", what)
	}
	p := Path()
	if p == "" {
		missing("mosquitto")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing(tool)
		}
	}
	return p
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs mosquitto with opts and stops it when the test ends.
func Start(t testing.TB, opts Options) *Broker {
	t.Helper()
	bin := Require(t)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		b, err := start(t, bin, opts)
		if err == nil {
			return b
		}
		lastErr = err // most likely a port taken between FreePort and bind: try again
	}
	t.Fatalf("mosquitto did not start: %v", lastErr)
	return nil
}

func start(t testing.TB, bin string, opts Options) (*Broker, error) {
	dir := t.TempDir()
	b := &Broker{Dir: dir, Addr: fmt.Sprintf("127.0.0.1:%d", FreePort(t))}
	var conf strings.Builder
	conf.WriteString("per_listener_settings false\nallow_anonymous true\npersistence false\nlog_dest stdout\nlog_type error\nlog_type warning\n")
	if !opts.Quiet {
		conf.WriteString("log_type notice\n")
	}
	if os.Geteuid() == 0 {
		// mosquitto drops to the user "mosquitto" when started as root, and then cannot read
		// keys in the test's private temp directory.
		conf.WriteString("user root\n")
	}
	for _, l := range opts.Config {
		conf.WriteString(l + "\n")
	}
	fmt.Fprintf(&conf, "listener %s 127.0.0.1\n", port(b.Addr))
	if opts.TLS != nil {
		b.TLSAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		fmt.Fprintf(&conf, "listener %s 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n", port(b.TLSAddr), opts.TLS.CAFile, opts.TLS.CertFile, opts.TLS.KeyFile)
		if opts.TLS.RequireCertificate {
			conf.WriteString("require_certificate true\n")
		}
		if opts.TLS.UseIdentityAsUsername {
			conf.WriteString("use_identity_as_username true\n")
		}
		if opts.TLS.Version != "" {
			fmt.Fprintf(&conf, "tls_version %s\n", opts.TLS.Version)
		}
	}
	if opts.WebSockets {
		b.WSAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		fmt.Fprintf(&conf, "listener %s 127.0.0.1\nprotocol websockets\n", port(b.WSAddr))
	}
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o600); err != nil {
		return nil, err
	}
	b.bin, b.confPath = bin, confPath
	if err := b.launch(); err != nil {
		return nil, err
	}
	t.Cleanup(b.Kill)
	return b, nil
}

// launch starts mosquitto and waits until every listener accepts connections.
func (b *Broker) launch() error {
	cmd := exec.Command(b.bin, "-c", b.confPath)
	cmd.Dir = b.Dir
	cmd.Stdout, cmd.Stderr = lockedWriter{b}, lockedWriter{b}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	b.mu.Lock()
	b.cmd, b.exited = cmd, exited
	b.mu.Unlock()
	addrs := []string{b.Addr, b.TLSAddr, b.WSAddr}
	deadline := time.Now().Add(10 * time.Second)
	for _, a := range addrs {
		if a == "" {
			continue
		}
		for {
			select {
			case <-exited:
				return fmt.Errorf("mosquitto exited: %s", b.Log())
			default:
			}
			c, err := net.DialTimeout("tcp", a, 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				b.Kill()
				return fmt.Errorf("mosquitto not listening on %s: %s", a, b.Log())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// Kill ends this mosquitto process (by its PID) with SIGKILL, as a crash would: it saves
// nothing on the way out. It returns once the process has exited.
func (b *Broker) Kill() {
	b.mu.Lock()
	cmd, exited := b.cmd, b.exited
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
}

// Restart starts mosquitto again after Kill, with the same configuration, working directory
// (its persistence file, if any) and ports.
func (b *Broker) Restart() error {
	b.Kill()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = b.launch(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond) // the port may still be held for a moment
	}
	return err
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
