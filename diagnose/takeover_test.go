package diagnose_test

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/diagnose"
	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
	"github.com/fennec-mqtt/fennec/packet"
)

// reconnectingDevice is a device that uses client ID id and reconnects 100 ms after its
// connection closes, until the test ends: a doctor run with its ID takes its session, and its
// next connection takes it back.
func reconnectingDevice(t *testing.T, addr, id string) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); wg.Wait() })
	connect, err := (&packet.Connect{Version: packet.V311, CleanStart: true, KeepAlive: 60, ClientID: id}).Append(nil, packet.V311)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 256)
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Write(connect)
			read:
				for {
					c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
					_, err := c.Read(buf)
					var ne net.Error
					switch {
					case err == nil:
					case errors.As(err, &ne) && ne.Timeout():
						select {
						case <-stop:
							c.Close()
							return
						default:
						}
					default:
						break read
					}
				}
				c.Close()
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
}

// MQTT 3.1.1 has no DISCONNECT from the server: a connection taken over by another client with
// the same client ID just closes, some time after the round trip. The doctor holds the
// connection open (Linger), runs the round trip again with another client ID when it closes,
// sees it work, and names the takeover (inferred, with the other candidate), against the
// embedded broker and mosquitto, with a device of that ID that reconnects when it is thrown out.
func TestDoctorTakeover311(t *testing.T) {
	for name, addr := range map[string]func(t *testing.T) string{
		"embedded":  func(t *testing.T) string { return brokertest.Start(t, brokertest.Options{}).TCPAddr },
		"mosquitto": func(t *testing.T) string { return mosquittotest.Start(t, mosquittotest.Options{Quiet: true}).Addr },
	} {
		t.Run(name, func(t *testing.T) {
			a := addr(t)
			reconnectingDevice(t, a, "dev-9")
			time.Sleep(200 * time.Millisecond) // the device is connected
			h, p := hostPort(t, a)
			r := expectCause(t, diagnose.Target{Host: h, Port: p, ClientID: "dev-9", Version: packet.V311, Timeout: 3 * time.Second, Linger: time.Second}, runs,
				diagnose.StepRoundTrip, diagnose.CauseSessionTakenOver, `"dev-9"`, "another client ID works", "stop the other client", "the round trip passed; the connection closed")
			if !r.Failed.Inferred || len(r.Failed.Candidates) != 2 {
				t.Fatalf("an inferred cause with candidates: %+v", r.Failed)
			}
		})
	}
}
