package bench_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/html"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/bench"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pubsub against the embedded broker: every message each publisher had acknowledged reaches
// every subscriber once, so the counts add up exactly, and latency is recorded for each.
func TestPubSubCountsAddUp(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	for _, qos := range []packet.QoS{0, 1, 2} {
		t.Run("QoS"+string(rune('0'+qos)), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := bench.Run(ctx, bench.Config{Mode: bench.PubSub, Client: fennec.Config{Server: "mqtt://" + b.TCPAddr},
				Publishers: 3, Subscribers: 2, QoS: qos, Count: 300, Inflight: 20, PayloadSize: 100})
			if err != nil {
				t.Fatal(err)
			}
			if res.Connected != 5 || res.ConnectErrors != 0 || res.Dropped != 0 || res.PublishErrors != 0 {
				t.Fatalf("connections %d, errors %d, dropped %d, publish errors %d: %v", res.Connected, res.ConnectErrors, res.Dropped, res.PublishErrors, res.Errors)
			}
			if res.Sent != 900 {
				t.Fatalf("sent %d, want 900", res.Sent)
			}
			st := res.Receive
			if res.Received != 1800 || st.Unique != 1800 || res.Lost != 0 || st.Duplicates != 0 || st.NoHeader != 0 {
				t.Fatalf("received %d, %+v, lost %d; want 1800 each once", res.Received, st, res.Lost)
			}
			if res.Latency.Count != 1800 || res.Latency.Min < 1 || res.Latency.Max < res.Latency.P50 {
				t.Fatalf("latency %+v", res.Latency)
			}
			if res.AckLatency.Count != 900 || res.SendRate <= 0 || res.ReceiveRate <= 0 {
				t.Fatalf("ack latency %+v, rates %v %v", res.AckLatency, res.SendRate, res.ReceiveRate)
			}
			if res.ConnectTime.Count != 5 {
				t.Fatalf("connect time %+v", res.ConnectTime)
			}
		})
	}
}

// A payload below the header is refused before anything connects.
func TestConfigErrors(t *testing.T) {
	for _, c := range []bench.Config{
		{Mode: bench.PubSub, Client: fennec.Config{Server: "mqtt://127.0.0.1:1"}, PayloadSize: 10},
		{Mode: "flood", Client: fennec.Config{Server: "mqtt://127.0.0.1:1"}},
		{Mode: bench.Pub},
		{Mode: bench.Pub, Client: fennec.Config{Server: "mqtt://127.0.0.1:1"}, QoS: 3},
	} {
		if _, err := bench.Run(context.Background(), c); err == nil {
			t.Fatalf("%+v: no error", c)
		}
	}
}

// A broker that is not there: the run fails, saying why, after trying every client.
func TestNoBroker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := bench.Run(ctx, bench.Config{Mode: bench.Pub, Client: fennec.Config{Server: "mqtt://127.0.0.1:1", ConnectTimeout: 2 * time.Second}, Publishers: 2})
	var nce *bench.NoConnectionError
	var ce *fennec.ConnectError
	if !errors.As(err, &nce) || nce.Attempts != 2 || !errors.As(err, &ce) || ce.Phase != fennec.PhaseTCP || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("err %v", err)
	}
	if res == nil || res.ConnectErrors != 2 {
		t.Fatalf("result %+v", res)
	}
}

// conn over TLS 1.3 with mutual TLS: every connection up, held with keep-alive, and the
// memory per connection measured.
func TestConnTLS(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Clients: []string{"dev1"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := bench.Run(ctx, bench.Config{Mode: bench.Conn, Connections: 40, ConnectRate: 400, Duration: 300 * time.Millisecond,
		Client: fennec.Config{Server: "mqtts://" + b.TLSAddr, TLSConfig: b.ClientTLSConfig("dev1"), KeepAlive: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Connected != 40 || res.ConnectErrors != 0 || res.Dropped != 0 {
		t.Fatalf("connected %d, errors %d, dropped %d: %v", res.Connected, res.ConnectErrors, res.Dropped, res.Errors)
	}
	if res.Memory.HeapPerConnection <= 0 || res.Memory.GoroutinesPerConnect < 1 || res.ConnectsPerSec <= 0 || res.ConnectTime.Count != 40 {
		t.Fatalf("memory %+v, %v connects/s, connect time %+v", res.Memory, res.ConnectsPerSec, res.ConnectTime)
	}
	// paced at 400/s, 40 connections take at least 97.5 ms: the pace was kept
	if res.ConnectsPerSec > 440 {
		t.Fatalf("%.0f connects/s with a connect rate of 400", res.ConnectsPerSec)
	}
}

// The report is an HTML page with the two charts as inline SVG.
func TestReportIsHTMLWithCharts(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := bench.Run(ctx, bench.Config{Mode: bench.PubSub, Client: fennec.Config{Server: "mqtt://" + b.TCPAddr},
		QoS: 1, Duration: 400 * time.Millisecond, Rate: 500, Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Timeline) < 4 {
		t.Fatalf("%d timeline samples over 400 ms at 50 ms", len(res.Timeline))
	}
	var buf bytes.Buffer
	if err := bench.WriteReport(&buf, res); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	figures := map[string]int{} // figure id → path elements in its svg
	var walk func(n *html.Node, fig string)
	walk = func(n *html.Node, fig string) {
		if n.Type == html.ElementNode {
			if n.Data == "figure" {
				for _, a := range n.Attr {
					if a.Key == "id" {
						fig = a.Val
						figures[fig] += 0
					}
				}
			}
			if n.Data == "path" && fig != "" {
				figures[fig]++
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, fig)
		}
	}
	walk(doc, "")
	if figures["latency"] < 10 || figures["throughput"] < 2 {
		t.Fatalf("paths per figure: %v", figures)
	}
	if !strings.Contains(page, "lost, duplicated, reordered") {
		t.Fatal("the report lacks the summary table")
	}
}
