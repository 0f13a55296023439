package fennec

import (
	"context"
	"testing"
	"time"
	"unsafe"

	"github.com/fennec-mqtt/fennec/broker/brokertest"
)

// TestClientFootprint holds the Client struct, the largest part of an idle connection's
// memory after crypto/tls, to its size class (896 bytes): it was 1,776 while it kept the
// dial options and the CONNECT properties twice (docs/benchmarks.md, "Idle memory and its
// floor"). A field that pushes it over belongs behind a pointer made on first use, as the
// request and topic-alias state are.
func TestClientFootprint(t *testing.T) {
	if n := unsafe.Sizeof(Client{}); n > 896 {
		t.Errorf("Client is %d bytes, over its 896-byte budget", n)
	}
	if n := unsafe.Sizeof(Config{}); n > 352 {
		t.Errorf("Config is %d bytes, over its 352-byte budget (it is kept by every client)", n)
	}
}

// TestDoneMadeOnFirstUse: a client keeps no Done channel until Done is called (an idle
// connection of a gateway pays for none); Done asked before the end is closed at the end,
// Done asked after it is closed already, and every call returns the same channel.
func TestDoneMadeOnFirstUse(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	connect := func() *Client {
		c, err := Connect(ctx, Config{Server: "mqtt://" + b.TCPAddr, CleanStart: true, DisableReconnect: true})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	wait := func(ch <-chan struct{}, what string) {
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("%s: Done not closed", what)
		}
	}

	late := connect()
	late.mu.Lock()
	made := late.doneCh != nil
	late.mu.Unlock()
	if made {
		t.Fatal("a connected client holds a Done channel nobody asked for")
	}
	if err := late.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	for !func() bool { late.mu.Lock(); defer late.mu.Unlock(); return late.finished }() {
		select {
		case <-ctx.Done():
			t.Fatal("the client never finished")
		case <-time.After(time.Millisecond):
		}
	}
	wait(late.Done(), "asked after the end")
	if first := late.Done(); late.Done() != first {
		t.Fatal("Done returns a new channel on each call")
	}

	early := connect()
	ch := early.Done()
	select {
	case <-ch:
		t.Fatal("Done closed while connected")
	default:
	}
	if err := early.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	wait(ch, "asked before the end")
	if early.Done() != ch {
		t.Fatal("Done returns a new channel after the end")
	}
}
