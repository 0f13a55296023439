package fennec_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/pki"
)

// Measurements for the design notes (docs/client.md), not tests: they only log, and run only
// with FENNEC_MEASURE=1. The comparisons with other clients live in benchmarks/.
//
//	FENNEC_MEASURE=1 go test -run 'TestMeasure' -v .

// TestMeasureIdleHeap: heap, goroutines and stack per idle TLS 1.3 client (mutual TLS,
// mosquitto, one shared tls.Config).
func TestMeasureIdleHeap(t *testing.T) {
	if os.Getenv("FENNEC_MEASURE") == "" {
		t.Skip("set FENNEC_MEASURE=1")
	}
	dev, err := pki.GenerateDevPKI(pki.DevPKIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	files, err := dev.WriteDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := mosquittotest.Start(t, mosquittotest.Options{TLS: &mosquittotest.TLS{CAFile: files.CA,
		CertFile: files.ServerCert, KeyFile: files.ServerKey, RequireCertificate: true}})
	roots := x509.NewCertPool()
	roots.AddCert(dev.CA.Cert)
	cn := dev.ClientNames[0]
	cert := tls.Certificate{Certificate: [][]byte{dev.Clients[cn].Cert.Raw}, PrivateKey: dev.Clients[cn].Key}
	tlsCfg := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	const n = 500
	ctx := testCtx(t)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	g0 := runtime.NumGoroutine()
	cs := make([]*fennec.Client, 0, n)
	for i := 0; i < n; i++ {
		c, err := fennec.Connect(ctx, fennec.Config{Server: "mqtts://" + b.TLSAddr, TLSConfig: tlsCfg, CleanStart: true})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m1)
	t.Logf("%d idle TLS clients: %.1f KiB heap, %.2f goroutines, %.1f KiB stack per client",
		n, float64(m1.HeapAlloc-m0.HeapAlloc)/n/1024, float64(runtime.NumGoroutine()-g0)/n,
		float64(m1.StackInuse-m0.StackInuse)/n/1024)
	for _, c := range cs {
		c.Close()
	}
}

// TestMeasureThroughput: 100,000 messages of 64 bytes, one publisher and one subscriber over
// plain TCP to mosquitto (max_queued_messages 0, max_inflight_messages 1000), per QoS.
func TestMeasureThroughput(t *testing.T) {
	if os.Getenv("FENNEC_MEASURE") == "" {
		t.Skip("set FENNEC_MEASURE=1")
	}
	b := startMosquitto(t, "max_queued_messages 0", "max_inflight_messages 1000")
	ctx := context.Background()
	for _, v := range versions {
		for _, q := range []packet.QoS{0, 1} {
			subC := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, Version: v, CleanStart: true, ReceiveMaximum: 1000})
			pubC := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, Version: v, CleanStart: true})
			const n = 100000
			all := make(chan struct{})
			count := 0
			if _, err := subC.Subscribe(ctx, func(*fennec.Message) {
				if count++; count == n {
					close(all)
				}
			}, sub("measure", q)); err != nil {
				t.Fatal(err)
			}
			payload := make([]byte, 64)
			start := time.Now()
			var last *fennec.Token
			for i := 0; i < n; i++ {
				last = pubC.PublishAsync(&fennec.Message{Topic: "measure", QoS: q, Payload: payload})
			}
			if err := last.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case <-all:
				t.Logf("MQTT %v QoS %d: %.0f msg/s received", v, q, n/time.Since(start).Seconds())
			case <-time.After(30 * time.Second):
				t.Logf("MQTT %v QoS %d: only %d of %d received", v, q, count, n)
			}
			pubC.Close()
			subC.Close()
		}
	}
}
