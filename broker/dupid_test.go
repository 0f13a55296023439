package broker_test

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
)

// Connections with one client ID that connect at the same moment: when they have all been
// answered, exactly one is still connected [MQTT-3.1.4-3]. mochi's takeover let two of them
// stay connected when their look ups of the old client raced (seen as a doctor run and a
// reconnecting device both connected with one ID).
func TestSimultaneousConnectsSameClientID(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	connect, err := (&packet.Connect{Version: packet.V311, CleanStart: true, KeepAlive: 60, ClientID: "dup"}).Append(nil, packet.V311)
	if err != nil {
		t.Fatal(err)
	}
	const rounds, parallel = 30, 4
	for r := range rounds {
		conns := make([]net.Conn, parallel)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range conns {
			c, err := net.Dial("tcp", b.TCPAddr)
			if err != nil {
				t.Fatal(err)
			}
			conns[i] = c
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				c.Write(connect)
			}()
		}
		close(start)
		wg.Wait()
		// every CONNECT answered and every takeover done: poll, since under load it takes a while
		closed := make([]bool, len(conns))
		open := 0
		for deadline := time.Now().Add(5 * time.Second); ; {
			open = 0
			for i, c := range conns {
				if closed[i] {
					continue
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
				buf := make([]byte, 64)
				for {
					if _, err := c.Read(buf); err != nil {
						var ne net.Error
						if errors.As(err, &ne) && ne.Timeout() {
							open++
						} else {
							closed[i] = true // EOF or a reset
						}
						break
					}
				}
			}
			if open <= 1 || time.Now().After(deadline) {
				break
			}
		}
		for _, c := range conns {
			c.Close()
		}
		if open != 1 {
			t.Fatalf("round %d: %d of %d connections with one client ID still connected, want 1", r, open, parallel)
		}
	}
}
