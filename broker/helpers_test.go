package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// requireTool fails the test when a real peer is missing: the peers are part of the test setup
// (make test installs them). FENNEC_SKIP_MOSQUITTO=1 skips instead.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("FENNEC_SKIP_MOSQUITTO") != "" {
			t.Skipf("%s not installed", name)
		}
		t.Fatalf("%s not installed (apt-get install mosquitto-clients): %v", name, err)
	}
	return p
}

type result struct {
	out  string
	err  error
	code int
}

// run runs a command with a bound on its life, so a hung peer fails the test instead of hanging
// it.
func run(t *testing.T, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, requireTool(t, name), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	r := result{out: out.String(), err: err}
	if cmd.ProcessState != nil {
		r.code = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %s: did not finish: %s", name, strings.Join(args, " "), r.out)
	}
	return r
}

// lockedBuffer collects a command's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is a long-running command (a subscriber) started by startCmd.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	out    *lockedBuffer
	cancel context.CancelFunc
	done   bool
}

// startCmd starts a long-running command; it is killed when the test ends unless waited for.
func startCmd(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := exec.CommandContext(ctx, requireTool(t, name), args...)
	p := &proc{t: t, cmd: cmd, out: &lockedBuffer{}, cancel: cancel}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !p.done {
			p.kill()
		}
	})
	return p
}

// output is what the command has written so far.
func (p *proc) output() string { return p.out.String() }

// wait waits for the command to end by itself.
func (p *proc) wait() result {
	p.t.Helper()
	if p.done {
		p.t.Fatal("wait called twice")
	}
	p.done = true
	defer p.cancel()
	err := p.cmd.Wait()
	return result{out: p.out.String(), err: err, code: p.cmd.ProcessState.ExitCode()}
}

// kill ends the command and returns its output.
func (p *proc) kill() string {
	p.done = true
	p.cancel()
	_ = p.cmd.Wait()
	return p.out.String()
}

// tlsArgs are mosquitto client arguments for the broker's TLS listener; cert and key may be "".
func tlsArgs(b *brokertest.Broker, cert, key string) []string {
	host, port := splitAddr(b.TLSAddr)
	a := []string{"-h", host, "-p", port, "--cafile", b.CAFile, "--tls-version", "tlsv1.3"}
	if cert != "" {
		a = append(a, "--cert", cert, "--key", key)
	}
	return a
}

func splitAddr(addr string) (string, string) {
	i := strings.LastIndex(addr, ":")
	return addr[:i], addr[i+1:]
}

// waitFor polls cond until it holds; it fails the test after a generous bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// subscribed reports whether the client with this ID has at least n subscriptions.
func subscribed(b *brokertest.Broker, id string, n int) func() bool {
	return func() bool {
		cl, ok := b.Server().Clients.Get(id)
		return ok && !cl.Closed() && cl.State.Subscriptions.Len() >= n
	}
}

// logLines counts the lines of the log that hold every one of parts.
func logLines(logs *lockedBuffer, parts ...string) int {
	n := 0
	for _, line := range strings.Split(logs.String(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all && line != "" {
			n++
		}
	}
	return n
}

// waitLogLines waits until the log holds at least n lines with every one of parts: the broker
// logs a refusal after the client may already have seen it.
func waitLogLines(t *testing.T, logs *lockedBuffer, n int, parts ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d log lines with %q", n, parts), func() bool { return logLines(logs, parts...) >= n })
}
