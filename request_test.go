package fennec_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
	"github.com/fennec-mqtt/fennec/packet"
)

// Request and Respond against the embedded broker and mosquitto: 20 concurrent requests each
// get their own answer (matched by Correlation Data); a request nobody answers ends with ctx;
// an MQTT 3.1.1 client is refused at once; Respond without a Response Topic is an error.
func TestRequestResponse(t *testing.T) {
	for name, addr := range map[string]func(*testing.T) string{
		"embedded":  func(t *testing.T) string { return brokertest.Start(t, brokertest.Options{}).TCPAddr },
		"mosquitto": func(t *testing.T) string { return mosquittotest.Start(t, mosquittotest.Options{Quiet: true}).Addr },
	} {
		t.Run(name, func(t *testing.T) {
			url := "mqtt://" + addr(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			responder, err := fennec.Connect(ctx, fennec.Config{Server: url, ClientID: "responder"})
			if err != nil {
				t.Fatal(err)
			}
			defer responder.Close()
			if _, err := responder.Subscribe(ctx, func(m *fennec.Message) {
				go responder.Respond(ctx, m, &fennec.Message{QoS: 1, Payload: bytes.ToUpper(m.Payload)})
			}, packet.Subscription{Filter: "svc/upper", QoS: 1}); err != nil {
				t.Fatal(err)
			}
			requester, err := fennec.Connect(ctx, fennec.Config{Server: url, ClientID: "requester"})
			if err != nil {
				t.Fatal(err)
			}
			defer requester.Close()
			var wg sync.WaitGroup
			errs := make(chan error, 20)
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					q := fmt.Sprintf("question %d", i)
					r, err := requester.Request(ctx, &fennec.Message{Topic: "svc/upper", QoS: 1, Payload: []byte(q)})
					if err == nil && string(r.Payload) != fmt.Sprintf("QUESTION %d", i) {
						err = fmt.Errorf("request %d answered %q", i, r.Payload)
					}
					if err != nil {
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			short, c2 := context.WithTimeout(ctx, 200*time.Millisecond)
			defer c2()
			if _, err := requester.Request(short, &fennec.Message{Topic: "svc/nobody", QoS: 1, Payload: []byte("?")}); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("unanswered request: %v", err)
			}
			if err := responder.Respond(ctx, &fennec.Message{Topic: "x"}, &fennec.Message{}); !errors.Is(err, fennec.ErrNoResponseTopic) {
				t.Fatalf("Respond without a Response Topic: %v", err)
			}
			old, err := fennec.Connect(ctx, fennec.Config{Server: url, Version: packet.V311})
			if err != nil {
				t.Fatal(err)
			}
			defer old.Close()
			if _, err := old.Request(ctx, &fennec.Message{Topic: "svc/upper", Payload: []byte("x")}); err == nil {
				t.Fatal("a 3.1.1 client made a request")
			}
		})
	}
}
