package cli

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
	"github.com/fennec-mqtt/fennec/packet"
)

// scriptedBroker accepts the first connection and drops it when the SUBSCRIBE arrives, without
// SUBACK. Every later connection is answered with later (a CONNACK return code, 0: accepted)
// and closed at once. It counts connections.
func scriptedBroker(t *testing.T, later byte) (string, int, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			first := n.Add(1) == 1
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			rd := packet.NewReader(nc, 0)
			if _, err := rd.ReadPacket(packet.V311); err != nil {
				nc.Close()
				continue
			}
			code := packet.ReasonCode(later)
			if first {
				code = 0
			}
			b, _ := (&packet.Connack{ReasonCode: code}).Append(nil, packet.V311)
			nc.Write(b)
			if first {
				for {
					p, err := rd.ReadPacket(packet.V311)
					if err != nil || p.Type() == packet.SUBSCRIBE {
						break
					}
				}
			}
			nc.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	addr := l.Addr().(*net.TCPAddr)
	return addr.IP.String(), addr.Port, &n
}

// TestSubTimeoutWhileReconnecting: -W ends the command also while the client waits to reconnect
// for its SUBSCRIBE. It used to be ignored there: the command waited for good.
func TestSubTimeoutWhileReconnecting(t *testing.T) {
	isolate(t)
	host, port, n := scriptedBroker(t, 0)
	start := time.Now()
	code, out, errout := run(t, "sub", "-V", "311", "-h", host, "-p", fmt.Sprint(port), "-t", "x", "-C", "1", "-W", "2")
	if code != cmdutil.ExitSubTimeout || out != "" || !strings.Contains(errout, "timed out") {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, out, errout)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("-W 2 ended the command after %v", d)
	}
	// The broker drops every connection at once: the client backs off instead of storming.
	if got := n.Load(); got > 12 {
		t.Fatalf("%d connections in about 2 s", got)
	}
}

// TestSubPermanentRefusalOnReconnect: a reconnect refused for good (3.1.1 return code 5, not
// authorized) ends sub with the refusal's exit code and its explanation, instead of retrying
// for ever.
func TestSubPermanentRefusalOnReconnect(t *testing.T) {
	isolate(t)
	host, port, n := scriptedBroker(t, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done, _ := start(t, ctx, "", "sub", "-V", "311", "-h", host, "-p", fmt.Sprint(port), "-t", "x")
	r := wait(t, done, "sub")
	if r.code != cmdutil.ExitRefused || !strings.Contains(strings.ToLower(r.errout), "not authori") {
		t.Fatalf("exit %d, stderr %s", r.code, r.errout)
	}
	if got := n.Load(); got != 2 {
		t.Fatalf("%d connections, want 2 (the first, then the refused reconnect)", got)
	}
}

// TestDisconnectWaitsForCallbacks: a command's Disconnect returns only after a callback that
// is running (here the lost-connection note, blocked) has returned, so nothing a callback
// prints comes after the command's own last words. It used to return at once (a data race on
// stderr seen in CI: TestSubTimeoutWhileReconnecting's note beside the final error).
func TestDisconnectWaitsForCallbacks(t *testing.T) {
	isolate(t)
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	inLost, release := make(chan struct{}), make(chan struct{})
	var returned atomic.Bool
	spec := &cmdutil.ConnSpec{Server: "mqtt://" + b.TCPAddr, ClientID: "cb-wait", Version: 5, KeepAlive: 30 * time.Second, Timeout: 5 * time.Second, Reconnect: true}
	spec.OnLost = func(error) {
		select {
		case <-inLost:
			return // a later loss
		default:
		}
		close(inLost)
		<-release
		returned.Store(true)
	}
	c, err := cmdutil.Connect(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	// a second client with the same ID takes the session over: the first loses its connection
	other, err := cmdutil.Connect(ctx, &cmdutil.ConnSpec{Server: "mqtt://" + b.TCPAddr, ClientID: "cb-wait", Version: 5, KeepAlive: 30 * time.Second, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Disconnect(ctx)
	select {
	case <-inLost:
	case <-ctx.Done():
		t.Fatal("the connection was not lost")
	}
	time.AfterFunc(200*time.Millisecond, func() { close(release) })
	if err := c.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	if !returned.Load() {
		t.Fatal("Disconnect returned while the lost-connection callback was still running")
	}
}
