package awsiot_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/awsiot"
	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/pki"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The embedded roots are Amazon Root CA 1 and 3, by fingerprint, and the same as the system
// store's when it has them.
func TestRootFingerprints(t *testing.T) {
	roots := awsiot.RootCAs()
	want := map[string]string{"Amazon Root CA 1": awsiot.RootCA1SHA256, "Amazon Root CA 3": awsiot.RootCA3SHA256}
	if len(roots) != 2 {
		t.Fatalf("%d roots", len(roots))
	}
	for _, c := range roots {
		if fp := awsiot.Fingerprint(c); fp != want[c.Subject.CommonName] || !awsiot.IsAmazonRoot(c) || !c.IsCA {
			t.Fatalf("%s: fingerprint %s, want %s", c.Subject, fp, want[c.Subject.CommonName])
		}
	}
	if !strings.HasPrefix(awsiot.RootCA1SHA256, "8ECDE688") || !strings.HasSuffix(awsiot.RootCA1SHA256, "AE98196E") ||
		!strings.HasPrefix(awsiot.RootCA3SHA256, "18CE6CFE") || !strings.HasSuffix(awsiot.RootCA3SHA256, "B46DB3A4") {
		t.Fatal("fingerprint constants differ from AWS's published values")
	}
	for i, name := range []string{"/etc/ssl/certs/Amazon_Root_CA_1.pem", "/etc/ssl/certs/Amazon_Root_CA_3.pem"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Logf("%s: %v (no system copy to compare)", name, err)
			continue
		}
		blk, _ := pem.Decode(b)
		if blk == nil || string(blk.Bytes) != string(roots[i].Raw) {
			t.Fatalf("%s differs from the embedded root", name)
		}
	}
}

func devMaterial(t *testing.T) (cert, key pki.Source) {
	t.Helper()
	p, err := devpki.Generate(devpki.Options{Clients: []string{"dev1"}})
	if err != nil {
		t.Fatal(err)
	}
	c := p.Clients["dev1"]
	return pki.BytesSource(c.CertPEM, "dev1.pem"), pki.BytesSource(c.KeyPEM, "dev1-key.pem")
}

func TestClientConfig(t *testing.T) {
	cert, key := devMaterial(t)
	const ep = "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com"
	c := awsiot.Config{Endpoint: ep, ThingName: "dev1", Cert: cert, Key: key}
	cfg, err := c.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, r := range awsiot.RootCAs() {
		pool.AddCert(r)
	}
	if cfg.Server != "mqtts://"+ep+":8883" || cfg.ClientID != "dev1" || cfg.TLSConfig.ServerName != ep ||
		len(cfg.TLSConfig.NextProtos) != 0 || cfg.KeepAlive != awsiot.DefaultKeepAlive || cfg.Version != packet.V5 ||
		!cfg.TLSConfig.RootCAs.Equal(pool) || len(cfg.TLSConfig.Certificates) != 1 {
		t.Fatalf("%+v / %+v", cfg, cfg.TLSConfig)
	}
	if awsiot.Region(ep) != "eu-west-1" || len(c.Warnings()) != 0 {
		t.Fatalf("region %q, warnings %v", awsiot.Region(ep), c.Warnings())
	}

	c.Port = 443
	if cfg, err = c.ClientConfig(); err != nil || cfg.Server != "mqtts://"+ep+":443" || len(cfg.TLSConfig.NextProtos) != 1 || cfg.TLSConfig.NextProtos[0] != "x-amzn-mqtt-ca" {
		t.Fatalf("443: %v %+v", err, cfg.TLSConfig)
	}
	bad := []struct {
		name string
		mod  func(*awsiot.Config)
		want string
	}{
		{"port 1883", func(c *awsiot.Config) { c.Port = 1883 }, "8883"},
		{"URL", func(c *awsiot.Config) { c.Endpoint = "mqtts://" + ep }, "not a URL"},
		{"no ID", func(c *awsiot.Config) { c.ThingName = "" }, "ClientID"},
		{"long ID", func(c *awsiot.Config) { c.ClientID = strings.Repeat("x", 129) }, "129 bytes"},
		{"keepalive", func(c *awsiot.Config) { c.KeepAlive = 10 * time.Second }, "30 s to 1200 s"},
		{"no cert", func(c *awsiot.Config) { c.Cert = pki.Source{} }, "device certificate"},
	}
	for _, b := range bad {
		c := awsiot.Config{Endpoint: ep, ThingName: "dev1", Cert: cert, Key: key}
		b.mod(&c)
		if _, err := c.ClientConfig(); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: %v, want %q", b.name, err, b.want)
		}
	}
	legacy := awsiot.Config{Endpoint: "a1b2c3d4e5f6g7.iot.eu-west-1.amazonaws.com", ThingName: "dev1", Cert: cert, Key: key}
	if w := legacy.Warnings(); len(w) != 1 || !strings.Contains(w[0], "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com") {
		t.Fatalf("legacy endpoint: %v", w)
	}
}

func TestLimits(t *testing.T) {
	l := awsiot.DefaultLimits
	for _, c := range []struct {
		topic  string
		filter bool
		ok     bool
	}{
		{"a/b/c/d/e/f/g/h", false, true},
		{"a/b/c/d/e/f/g/h/i", false, false},
		{"$aws/rules/myrule/a/b/c/d/e/f/g/h", false, true},
		{"$aws/things/t/shadow/name/n/update/accepted", true, true},
		{"$SYS/broker/uptime", true, false},
		{strings.Repeat("x", 256), false, true},
		{strings.Repeat("x", 257), false, false},
	} {
		err := l.CheckTopic(c.topic, c.filter)
		var le *awsiot.LimitError
		if (err == nil) != c.ok || (err != nil && !errors.As(err, &le)) {
			t.Errorf("%q: %v", c.topic, err)
		}
	}
}

// shadowPolicy lets each thing connect as itself and use its own shadows, and the "app" use
// every shadow.
const shadowPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"},
 {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "arn:aws:iot:us-east-1:123456789012:topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:us-east-1:123456789012:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*"},
 {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "arn:aws:iot:us-east-1:123456789012:topic/$aws/things/*"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:us-east-1:123456789012:topicfilter/$aws/things/*"},
 {"Effect": "Deny", "Action": ["iot:Publish", "iot:Subscribe", "iot:Receive"], "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/$aws/things/other/*", "arn:aws:iot:us-east-1:123456789012:topicfilter/$aws/things/other/*"]}
]}`

func startEmulator(t *testing.T) *brokertest.Broker {
	pol, err := broker.ParsePolicy([]byte(shadowPolicy))
	if err != nil {
		t.Fatal(err)
	}
	return startEmulatorWith(t, broker.AWS{Policy: pol})
}

func startEmulatorWith(t *testing.T, aws broker.AWS) *brokertest.Broker {
	return brokertest.Start(t, brokertest.Options{Clients: []string{"dev1", "app"}, AWS: &aws})
}

func connect(t *testing.T, b *brokertest.Broker, thing string, v packet.Version) *awsiot.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := awsiot.Connect(ctx, awsiot.Config{Endpoint: b.TLSAddr, ThingName: thing, ServerName: "localhost",
		RootCAs: []pki.Source{pki.FileSource(b.CAFile)}, Cert: pki.FileSource(b.Files.ClientCert[thing]), Key: pki.FileSource(b.Files.ClientKey[thing]),
		Version: v, Base: fennec.Config{DisableReconnect: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}

// The device shadow round trip against the emulation: get of a missing shadow, desired set by
// an application and delivered to the device as a delta, reported by the device, versions and
// optimistic locking, deletion of keys and of the shadow, a named shadow beside the classic
// one, and the policy refusing another thing's shadow. MQTT 5 and 3.1.1.
func TestShadowEmulated(t *testing.T) {
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		t.Run(v.String(), func(t *testing.T) {
			b := startEmulator(t)
			dev, app := connect(t, b, "dev1", v), connect(t, b, "app", v)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			devShadow, appShadow := awsiot.NewShadow(dev, "dev1", ""), awsiot.NewShadow(app, "dev1", "")

			if _, err := devShadow.Get(ctx); !errors.Is(err, awsiot.ErrShadowNotFound) {
				t.Fatalf("get of no shadow: %v", err)
			}
			deltas := make(chan awsiot.Delta, 10)
			if err := devShadow.OnDelta(ctx, func(d awsiot.Delta) { deltas <- d }); err != nil {
				t.Fatal(err)
			}
			doc, err := appShadow.Update(ctx, awsiot.Update{Desired: map[string]any{"color": "red", "led": map[string]any{"on": true, "level": 3}}})
			if err != nil || doc.Version != 1 || doc.State.Desired["color"] != "red" {
				t.Fatalf("update desired: %v %+v", err, doc)
			}
			select {
			case d := <-deltas:
				if d.Version != 1 || d.State["color"] != "red" || d.State["led"].(map[string]any)["level"] != float64(3) {
					t.Fatalf("delta %+v", d)
				}
			case <-ctx.Done():
				t.Fatal("no delta")
			}
			// The device reports part of it: no delta message for a reported-only update.
			if doc, err = devShadow.Update(ctx, awsiot.Update{Reported: map[string]any{"color": "red", "led": map[string]any{"on": true}}}); err != nil || doc.Version != 2 {
				t.Fatalf("report: %v %+v", err, doc)
			}
			got, err := appShadow.Get(ctx)
			if err != nil || got.Version != 2 || got.State.Reported["color"] != "red" || got.State.Delta["color"] != nil ||
				got.State.Delta["led"].(map[string]any)["level"] != float64(3) || got.State.Delta["led"].(map[string]any)["on"] != nil {
				t.Fatalf("get: %v %+v", err, got)
			}
			if _, err := appShadow.Update(ctx, awsiot.Update{Desired: map[string]any{"color": "blue"}, Version: 1}); !errors.Is(err, awsiot.ErrVersionConflict) {
				t.Fatalf("stale version: %v", err)
			}
			if _, err := appShadow.Update(ctx, awsiot.Update{Desired: map[string]any{"led": nil}, Version: 2}); err != nil {
				t.Fatal(err)
			}
			if got, _ = devShadow.Get(ctx); got.Version != 3 || got.State.Desired["led"] != nil || len(got.State.Delta) != 0 {
				t.Fatalf("after deleting desired.led: %+v", got)
			}
			select {
			case d := <-deltas:
				t.Fatalf("delta without a difference: %+v", d)
			default:
			}

			named := awsiot.NewShadow(dev, "dev1", "config")
			if doc, err = named.Update(ctx, awsiot.Update{Reported: map[string]any{"interval": 60}}); err != nil || doc.Version != 1 {
				t.Fatalf("named: %v %+v", err, doc)
			}
			if ver, err := devShadow.Delete(ctx); err != nil || ver != 3 {
				t.Fatalf("delete: %d %v", ver, err)
			}
			if _, err := devShadow.Get(ctx); !errors.Is(err, awsiot.ErrShadowNotFound) {
				t.Fatalf("get after delete: %v", err)
			}
			if got, err = named.Get(ctx); err != nil || got.State.Reported["interval"] != float64(60) {
				t.Fatalf("named shadow after the classic one's deletion: %v %+v", err, got)
			}
			if doc, err = devShadow.Update(ctx, awsiot.Update{Reported: map[string]any{"x": 1}}); err != nil || doc.Version != 4 {
				t.Fatalf("version after a deletion: %v %+v", err, doc)
			}
			if v == packet.V5 {
				_, err = awsiot.NewShadow(dev, "other", "").Get(ctx)
				if err == nil || !strings.Contains(err.Error(), "Not authorized") && !strings.Contains(err.Error(), "not authorized") {
					t.Fatalf("another thing's shadow: %v", err)
				}
			}
		})
	}
}

// AWS's limits are refused before anything is sent, with the limit named.
func TestClientRefusesOverLimits(t *testing.T) {
	b := startEmulator(t)
	c := connect(t, b, "dev1", packet.V5)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var le *awsiot.LimitError
	for _, m := range []*fennec.Message{
		{Topic: "$aws/things/dev1/shadow/x", QoS: 2},
		{Topic: "$aws/things/dev1/shadow/x", Payload: make([]byte, 128*1024+1)},
		{Topic: "a/b/c/d/e/f/g/h/i"},
	} {
		if err := c.Publish(ctx, m); !errors.As(err, &le) {
			t.Fatalf("%q QoS %d %d bytes: %v", m.Topic, m.QoS, len(m.Payload), err)
		}
	}
	if err := c.PublishAsync(ctx, &fennec.Message{Topic: "t", QoS: 2}).Wait(ctx); !errors.As(err, &le) {
		t.Fatalf("async QoS 2: %v", err)
	}
	var subs []packet.Subscription
	for i := range 9 {
		subs = append(subs, packet.Subscription{Filter: "$aws/things/dev1/shadow/s" + string(rune('a'+i)), QoS: 1})
	}
	if _, err := c.Subscribe(ctx, func(*fennec.Message) {}, subs...); !errors.As(err, &le) || le.Limit != "subscriptions per subscribe" {
		t.Fatalf("9 filters: %v", err)
	}
	for i := range 50 {
		if _, err := c.Subscribe(ctx, func(*fennec.Message) {}, packet.Subscription{Filter: "$aws/things/dev1/shadow/n" + string(rune('0'+i/10)) + string(rune('0'+i%10)), QoS: 1}); err != nil {
			t.Fatalf("subscription %d: %v", i, err)
		}
	}
	if _, err := c.Subscribe(ctx, func(*fennec.Message) {}, packet.Subscription{Filter: "$aws/things/dev1/shadow/one-more"}); !errors.As(err, &le) || le.Limit != "subscriptions per connection" {
		t.Fatalf("51st subscription: %v", err)
	}
	if err := c.Unsubscribe(ctx, "$aws/things/dev1/shadow/n00"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, func(*fennec.Message) {}, packet.Subscription{Filter: "$aws/things/dev1/shadow/one-more"}); err != nil {
		t.Fatalf("after an unsubscribe: %v", err)
	}
	// A burst: the 101st publish within a second is refused.
	n := 0
	for ; n < 200; n++ {
		if err := c.PublishAsync(ctx, &fennec.Message{Topic: "$aws/things/dev1/shadow/burst"}).Err(); err != nil {
			if !errors.As(err, &le) || le.Limit != "publish rate" {
				t.Fatal(err)
			}
			break
		}
	}
	if n != 100 {
		t.Fatalf("burst refused after %d publishes, want 100", n)
	}
}
