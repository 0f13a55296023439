package broker_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
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

// startCmd starts a long-running command (a subscriber) and returns a function that waits for it.
func startCmd(t *testing.T, name string, args ...string) func() result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := exec.CommandContext(ctx, requireTool(t, name), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := false
	wait := func() result {
		if done {
			t.Fatal("wait called twice")
		}
		done = true
		defer cancel()
		err := cmd.Wait()
		return result{out: out.String(), err: err, code: cmd.ProcessState.ExitCode()}
	}
	t.Cleanup(func() {
		if !done {
			cancel()
			_ = cmd.Wait()
		}
	})
	return wait
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
