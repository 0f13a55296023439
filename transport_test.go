package fennec_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

// TestTransports runs a round trip (subscribe, publish QoS 1, receive) over mqtts:// with a
// client certificate, ws:// and wss:// against mosquitto, and checks the trace hook sees TLS
// facts and packets both ways.
func TestTransports(t *testing.T) {
	dev, err := devpki.Generate(devpki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	files, err := dev.WriteDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	wssPort := mosquittotest.FreePort(t)
	b := mosquittotest.Start(t, mosquittotest.Options{
		TLS:        &mosquittotest.TLS{CAFile: files.CA, CertFile: files.ServerCert, KeyFile: files.ServerKey, RequireCertificate: true},
		WebSockets: true,
		Config: []string{fmt.Sprintf("listener %d 127.0.0.1", wssPort), "protocol websockets",
			"cafile " + files.CA, "certfile " + files.ServerCert, "keyfile " + files.ServerKey},
	})
	roots := x509.NewCertPool()
	roots.AddCert(dev.CA.Cert)
	cn := dev.ClientNames[0]
	cert := tls.Certificate{Certificate: [][]byte{dev.Clients[cn].Cert.Raw}, PrivateKey: dev.Clients[cn].Key}
	tlsCfg := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	for _, tc := range []struct{ name, url string }{
		{"mqtts", "mqtts://" + b.TLSAddr},
		{"ws", "ws://" + b.WSAddr + "/mqtt"},
		{"wss", fmt.Sprintf("wss://127.0.0.1:%d", wssPort)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakCheck(t)
			var mu sync.Mutex
			var sawTLS bool
			var in, out int
			cfg := fennec.Config{Server: tc.url, TLSConfig: tlsCfg, CleanStart: true,
				Username: "u", Password: []byte("s3cret"),
				Trace: func(e fennec.TraceEvent) {
					mu.Lock()
					defer mu.Unlock()
					if cp, ok := e.Packet.(*packet.Connect); ok && (len(cp.Password) > 0 || !cp.HasPassword) {
						t.Errorf("trace shows CONNECT password %q (has=%v)", cp.Password, cp.HasPassword)
					}
					switch {
					case e.TLS != nil:
						sawTLS = true
					case e.Packet != nil && e.Outbound:
						out++
					case e.Packet != nil:
						in++
					}
				}}
			c := connect(t, cfg)
			got := newCollector(1)
			ctx := testCtx(t)
			if _, err := c.Subscribe(ctx, got.handler, sub("transport/"+tc.name, 1)); err != nil {
				t.Fatal(err)
			}
			if err := c.Publish(ctx, &fennec.Message{Topic: "transport/" + tc.name, QoS: 1, Payload: []byte(tc.name)}); err != nil {
				t.Fatal(err)
			}
			if m := got.next(t); string(m.Payload) != tc.name {
				t.Fatalf("got %q", m.Payload)
			}
			st, ack := c.ConnectionState()
			if ack == nil || (tc.name != "ws") != (st != nil) {
				t.Fatalf("ConnectionState: tls=%v connack=%v", st != nil, ack)
			}
			if err := c.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if sawTLS != (tc.name != "ws") || in < 3 || out < 4 {
				t.Fatalf("trace: tls=%v in=%d out=%d", sawTLS, in, out)
			}
		})
	}

	t.Run("untrusted server", func(t *testing.T) {
		leakCheck(t)
		_, err := fennec.Connect(testCtx(t), fennec.Config{Server: "mqtts://" + b.TLSAddr,
			TLSConfig: &tls.Config{RootCAs: x509.NewCertPool(), Certificates: []tls.Certificate{cert}}})
		var ce *fennec.ConnectError
		var uae x509.UnknownAuthorityError
		if !errors.As(err, &ce) || ce.Phase != fennec.PhaseTLS || !errors.As(err, &uae) {
			t.Fatalf("err %v, want ConnectError phase tls wrapping x509.UnknownAuthorityError", err)
		}
	})
	t.Run("closed port", func(t *testing.T) {
		leakCheck(t)
		_, err := fennec.Connect(testCtx(t), fennec.Config{Server: fmt.Sprintf("mqtt://127.0.0.1:%d", mosquittotest.FreePort(t))})
		var ce *fennec.ConnectError
		if !errors.As(err, &ce) || ce.Phase != fennec.PhaseTCP {
			t.Fatalf("err %v, want ConnectError phase tcp", err)
		}
	})
}
