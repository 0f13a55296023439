package fennec_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
	"github.com/fennec-mqtt/fennec/packet"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"go.uber.org/goleak"
)

// testCtx returns a context bounded well below the test binary's timeout.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// leakCheck fails the test if it leaves goroutines behind; call it first.
func leakCheck(t *testing.T) {
	opts := []goleak.Option{goleak.IgnoreCurrent()}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

func startMosquitto(t *testing.T, conf ...string) *mosquittotest.Broker {
	t.Helper()
	return mosquittotest.Start(t, mosquittotest.Options{Config: conf})
}

// startMochi runs the mochi-mqtt broker in process on a free loopback port.
func startMochi(t *testing.T) string {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{InlineClient: false, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	tcp := listeners.NewTCP(listeners.Config{ID: "t", Address: addr})
	if err := srv.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return addr
}

func connect(t *testing.T, cfg fennec.Config) *fennec.Client {
	t.Helper()
	c, err := fennec.Connect(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("Connect %s: %v", cfg.Server, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type collector chan *fennec.Message

func newCollector(n int) collector { return make(collector, n) }

func (c collector) handler(m *fennec.Message) { c <- m }

func (c collector) next(t *testing.T) *fennec.Message {
	t.Helper()
	select {
	case m := <-c:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message arrived")
		return nil
	}
}

func sub(filter string, qos packet.QoS) packet.Subscription {
	return packet.Subscription{Filter: filter, QoS: qos}
}

var versions = []packet.Version{packet.V311, packet.V5}

func vname(v packet.Version) string { return fmt.Sprintf("v%s", v) }
