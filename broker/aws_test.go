package broker_test

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	mqtt "github.com/mochi-mqtt/server/v2"
)

// awsPolicy is shaped like AWS's example policies: connect only as the thing the certificate is
// attached to, publish and subscribe below things/<client ID>/, receive on everything below things/
// except things/+/secret, and no publishing to any .../forbidden topic.
const awsPolicy = `{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect",
     "Resource": "arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"},
    {"Effect": "Allow", "Action": "iot:Publish",
     "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/things/${iot:ClientId}/*"]},
    {"Effect": "Deny", "Action": "iot:Publish", "Resource": "arn:aws:iot:us-east-1:123456789012:topic/*/forbidden"},
    {"Effect": "Allow", "Action": "iot:Subscribe",
     "Resource": "arn:aws:iot:us-east-1:123456789012:topicfilter/things/${iot:ClientId}/*"},
    {"Effect": "Allow", "Action": "iot:Receive", "Resource": "arn:aws:iot:us-east-1:123456789012:topic/things/*"},
    {"Effect": "Deny", "Action": "iot:Receive", "Resource": "arn:aws:iot:us-east-1:123456789012:topic/things/*/secret"}
  ]
}`

func startAWS(t *testing.T) *brokertest.Broker {
	t.Helper()
	return startAWSWith(t, awsPolicy, nil)
}

// startAWSLogged is startAWS with the broker's log kept for the test to read.
func startAWSLogged(t *testing.T) (*brokertest.Broker, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	return startAWSWith(t, awsPolicy, logs), logs
}

// mosquittoRefused runs mosquitto_pub, which must fail, and waits for the broker to log one more
// line holding every one of cause: the refusal was for that reason.
func mosquittoRefused(t *testing.T, logs *lockedBuffer, args []string, cause ...string) {
	t.Helper()
	before := logLines(logs, cause...)
	if r := run(t, "mosquitto_pub", args...); r.code == 0 {
		t.Fatalf("mosquitto_pub %v succeeded: %s", args, r.out)
	}
	waitLogLines(t, logs, before+1, cause...)
}

// startAWSWith starts the AWS emulation with a policy document; logs, when not nil, receives a
// copy of the broker's log.
func startAWSWith(t *testing.T, policy string, logs *lockedBuffer) *brokertest.Broker {
	t.Helper()
	pol, err := broker.ParsePolicy([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	opts := brokertest.Options{
		Clients:    []string{"thing-1", "thing-2", "unregistered"},
		AWS:        &broker.AWS{Policy: pol},
		AWSDevices: []string{"thing-1", "thing-2"},
	}
	if logs != nil {
		opts.LogCopy = logs
	}
	return brokertest.Start(t, opts)
}

func awsTLS(t *testing.T, b *brokertest.Broker, cn string) net.Conn {
	return dialTLS(t, b.TLSAddr, b.ClientTLSConfig(cn))
}

func mosqAWS(b *brokertest.Broker, cn string, args ...string) []string {
	return append(tlsArgs(b, b.Files.ClientCert[cn], b.Files.ClientKey[cn]), args...)
}

// A denied iot:Connect, or an unregistered certificate, closes the connection without CONNACK.
func TestAWSDeniedConnectNoConnack(t *testing.T) {
	b, logs := startAWSLogged(t)
	for _, tc := range []struct{ cn, id, cause string }{
		{"thing-1", "not-my-thing", `policy denies iot:Connect for client ID \"not-my-thing\"`}, // client ID must be the thing name
		{"unregistered", "unregistered", `certificate \"unregistered\"`},
	} {
		for _, v5 := range []bool{false, true} {
			c := awsTLS(t, b, tc.cn)
			connect := connect311(tc.id, 60)
			if v5 {
				connect = connect5(tc.id, 60)
			}
			if _, err := c.Write(connect); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, c)
		}
		mosquittoRefused(t, logs, mosqAWS(b, tc.cn, "-i", tc.id, "-t", "things/"+tc.id+"/x", "-m", "m", "-V", "mqttv311"),
			"closing without CONNACK", tc.cause, "iot-policy-actions.html") // the log line cites the AWS page
	}
	// The allowed case connects.
	c := awsTLS(t, b, "thing-1")
	if ack := connectRaw(t, c, connect311("thing-1", 60)); ack[3] != 0 {
		t.Fatalf("thing-1 refused: % x", ack)
	}
}

// MQTT 3.1.1: an unauthorized publish (any QoS) or subscribe disconnects the client.
func TestAWSUnauthorized311Disconnects(t *testing.T) {
	b, logs := startAWSLogged(t)
	for _, pkt := range [][]byte{
		publish(false, "things/thing-2/x", 0, 0, []byte("m")),
		publish(false, "things/thing-1/forbidden", 1, 1, []byte("m")),
		subscribe(false, 1, "things/thing-2/#", 1),
	} {
		c := awsTLS(t, b, "thing-1")
		connectRaw(t, c, connect311("thing-1", 60))
		if _, err := c.Write(pkt); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, c)
	}
	mosquittoRefused(t, logs, mosqAWS(b, "thing-1", "-i", "thing-1", "-t", "things/thing-2/x", "-m", "m", "-q", "1", "-V", "mqttv311"),
		"AWS rule broken", `policy denies iot:Publish on \"things/thing-2/x\"`)
	// mosquitto_sub keeps its connection open: the broker's log shows the SUBSCRIBE refused and
	// the connection ended, without a SUBACK.
	denied := []string{"AWS rule broken", `policy denies iot:Subscribe on \"things/thing-2/#\"`}
	before := logLines(logs, denied...)
	sub := startCmd(t, "mosquitto_sub", mosqAWS(b, "thing-1", "-i", "thing-1", "-t", "things/thing-2/#", "-V", "mqttv311")...)
	waitLogLines(t, logs, before+1, denied...)
	sub.kill()
	ok := run(t, "mosquitto_pub", mosqAWS(b, "thing-1", "-i", "thing-1", "-t", "things/thing-1/x", "-m", "m", "-q", "1", "-V", "mqttv311")...)
	if ok.code != 0 {
		t.Fatalf("authorized publish failed: %s", ok.out)
	}
}

// MQTT 5: an unauthorized publish gets PUBACK 0x87 and an unauthorized subscribe SUBACK 0x87; the
// connection stays up.
func TestAWSUnauthorizedV5Gets0x87(t *testing.T) {
	b := startAWS(t)
	c := awsTLS(t, b, "thing-1")
	connectRaw(t, c, connect5("thing-1", 60))
	for _, s := range []struct {
		pkt  []byte
		kind byte
		want byte
	}{
		{publish(true, "things/thing-2/x", 1, 1, []byte("m")), 4, 0x87},
		{publish(true, "things/thing-1/forbidden", 1, 2, []byte("m")), 4, 0x87},
		{publish(true, "things/thing-1/ok", 1, 3, []byte("m")), 4, 0x00},
		{subscribe(true, 4, "things/thing-2/#", 1), 9, 0x87},
		{subscribe(true, 5, "things/thing-1/#", 1), 9, 0x01},
	} {
		if _, err := c.Write(s.pkt); err != nil {
			t.Fatal(err)
		}
		p, err := readPacket(c)
		if err != nil || p.kind() != s.kind {
			t.Fatalf("want packet type %d, got %v %v", s.kind, p, err)
		}
		got := ackCode(p)
		if s.kind == 9 {
			got = subackCodes(true, p)[0]
		}
		if got != s.want {
			t.Fatalf("reason code %#x, want %#x", got, s.want)
		}
	}
}

// iot:Receive is checked per delivered message: a subscription that may be made still receives
// only what the policy lets the client receive.
func TestAWSReceive(t *testing.T) {
	b := startAWS(t)
	sub := awsTLS(t, b, "thing-1")
	connectRaw(t, sub, connect5("thing-1", 60))
	sub.Write(subscribe(true, 1, "things/thing-1/#", 0))
	if p, err := readPacket(sub); err != nil || subackCodes(true, p)[0] != 0 {
		t.Fatalf("SUBACK %v %v", p, err)
	}
	// thing-1 publishes to itself: the policy lets no other thing publish below things/thing-1/.
	sub.Write(publish(true, "things/thing-1/secret", 0, 0, []byte("hidden")))
	sub.Write(publish(true, "things/thing-1/open", 0, 0, []byte("visible")))
	p, err := readPacket(sub)
	if err != nil || p.kind() != 3 {
		t.Fatalf("want PUBLISH, got %v %v", p, err)
	}
	if !bytes.HasSuffix(p.body, []byte("visible")) {
		t.Fatalf("first delivery % q, want the one on things/thing-1/open", p.body)
	}
}

// QoS 2 is not supported: MQTT 5 clients see Maximum QoS 1 in CONNACK and are disconnected with
// 0x9B for a QoS 2 PUBLISH; 3.1.1 clients are disconnected; subscriptions get QoS 1 at most.
func TestAWSQoS2(t *testing.T) {
	b, logs := startAWSLogged(t)
	c := awsTLS(t, b, "thing-1")
	ack := connectRaw(t, c, connect5("thing-1", 60))
	pr, _ := props(ack[4:])
	if pr[0x24] != uint32(1) {
		t.Fatalf("CONNACK Maximum QoS %v, want 1", pr[0x24])
	}
	c.Write(subscribe(true, 1, "things/thing-1/q", 2))
	if p, err := readPacket(c); err != nil || subackCodes(true, p)[0] != 1 {
		t.Fatalf("SUBACK for QoS 2: %v %v, want granted QoS 1", p, err)
	}
	c.Write(publish(true, "things/thing-1/q", 2, 2, []byte("m")))
	expectDisconnect(t, c, 0x9B)

	c3 := awsTLS(t, b, "thing-1")
	connectRaw(t, c3, connect311("thing-1", 60))
	c3.Write(publish(false, "things/thing-1/q", 2, 1, []byte("m")))
	expectClosed(t, c3)
	mosquittoRefused(t, logs, mosqAWS(b, "thing-1", "-i", "thing-1", "-t", "things/thing-1/q", "-m", "m", "-q", "2", "-V", "mqttv311"),
		"AWS rule broken", "QoS 2 publish")
}

// expectDisconnect reads an MQTT 5 DISCONNECT with the reason code, then the end of the connection.
func expectDisconnect(t *testing.T, c net.Conn, code byte) {
	t.Helper()
	p, err := readPacket(c)
	if err != nil {
		t.Fatalf("want DISCONNECT %#x, got %v", code, err)
	}
	if p.kind() != 14 || len(p.body) == 0 || p.body[0] != code {
		t.Fatalf("want DISCONNECT %#x, got type %d % x", code, p.kind(), p.body)
	}
	expectClosed(t, c)
}

// Topic names are limited to 256 bytes and 7 slashes, payloads to 128 KiB.
func TestAWSLimits(t *testing.T) {
	b, logs := startAWSLogged(t)
	sevenSlashes := "things/thing-1/a/b/c/d/e/f" // 7 slashes: allowed
	long := "things/thing-1/" + strings.Repeat("x", 256-len("things/thing-1/")+1)
	cases := []struct {
		name    string
		topic   string
		payload int
		code    byte // 0: accepted
	}{
		{"7 slashes", sevenSlashes, 1, 0},
		{"8 slashes", sevenSlashes + "/g", 1, 0x90},
		{"257-byte topic", long, 1, 0x90},
		{"256-byte topic", long[:256], 1, 0},
		{"128 KiB payload", "things/thing-1/big", broker.AWSMaxPayload, 0},
		{"128 KiB + 1 payload", "things/thing-1/big", broker.AWSMaxPayload + 1, 0x95},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := awsTLS(t, b, "thing-1")
			connectRaw(t, c, connect5("thing-1", 60))
			c.Write(publish(true, tc.topic, 1, 7, make([]byte, tc.payload)))
			if tc.code != 0 {
				expectDisconnect(t, c, tc.code)
			} else if p, err := readPacket(c); err != nil || ackCode(p) != 0 {
				t.Fatalf("PUBACK %v %v, want success", p, err)
			}
			c3 := awsTLS(t, b, "thing-1")
			connectRaw(t, c3, connect311("thing-1", 60))
			c3.Write(publish(false, tc.topic, 1, 7, make([]byte, tc.payload)))
			if tc.code != 0 {
				expectClosed(t, c3)
			} else if p, err := readPacket(c3); err != nil || p.kind() != 4 {
				t.Fatalf("PUBACK %v %v, want success", p, err)
			}
		})
	}
	// mosquitto_pub with 8 slashes: disconnected.
	mosquittoRefused(t, logs, mosqAWS(b, "thing-1", "-i", "thing-1", "-t", sevenSlashes+"/g", "-m", "m", "-q", "1", "-V", "mqttv311"),
		"AWS rule broken", "topic with 8 slashes")
	// A subscription to a too-deep filter: 3.1.1 disconnected, 5 gets 0x8F.
	c := awsTLS(t, b, "thing-1")
	connectRaw(t, c, connect5("thing-1", 60))
	c.Write(subscribe(true, 3, sevenSlashes+"/+", 1))
	if p, err := readPacket(c); err != nil || subackCodes(true, p)[0] != 0x8F {
		t.Fatalf("SUBACK %v %v, want 0x8F", p, err)
	}
}

// A second connection with the same client ID disconnects the first.
func TestAWSClientIDTakeover(t *testing.T) {
	b := startAWS(t)
	first := awsTLS(t, b, "thing-1")
	connectRaw(t, first, connect311("thing-1", 60))
	second := awsTLS(t, b, "thing-1")
	if ack := connectRaw(t, second, connect311("thing-1", 60)); ack[3] != 0 {
		t.Fatalf("second connection refused: % x", ack)
	}
	expectClosed(t, first) // 3.1.1: closed, no DISCONNECT from the server

	v5 := awsTLS(t, b, "thing-1")
	connectRaw(t, v5, connect5("thing-1", 60))
	expectClosed(t, second)
	third := awsTLS(t, b, "thing-1")
	connectRaw(t, third, connect5("thing-1", 60))
	expectDisconnect(t, v5, 0x8E) // Session taken over
}

// A keep-alive below 30 s is raised to 30 s; MQTT 5 clients see it as Server Keep Alive.
func TestAWSKeepAlive(t *testing.T) {
	b := startAWS(t)
	for _, tc := range []struct{ asked, want uint16 }{{5, 30}, {29, 30}, {30, 0}, {600, 0}} {
		c := awsTLS(t, b, "thing-1")
		ack := connectRaw(t, c, connect5("thing-1", tc.asked))
		pr, _ := props(ack[4:])
		got, present := pr[0x13]
		switch {
		case tc.want == 0 && present:
			t.Errorf("keep-alive %d: Server Keep Alive %v sent, want none", tc.asked, got)
		case tc.want != 0 && got != uint32(tc.want):
			t.Errorf("keep-alive %d: Server Keep Alive %v, want %d", tc.asked, got, tc.want)
		}
		cl, ok := b.Server().Clients.Get("thing-1")
		if !ok || (tc.want != 0 && cl.State.Keepalive != tc.want) {
			t.Errorf("keep-alive %d: broker uses %d", tc.asked, cl.State.Keepalive)
		}
		c.Close()
	}
}

func TestParsePolicy(t *testing.T) {
	p, err := broker.ParsePolicy([]byte(`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Allowed("iot:Publish", "arn:aws:iot:us-east-1:1:topic/a", nil) {
		t.Fatal("iot:* on * does not allow publish")
	}
	for _, doc := range []string{
		`{"Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*","Condition":{"Bool":{"iot:Connection.Thing.IsAttached":"true"}}}]}`,
		`{"Statement":[{"Effect":"Maybe","Action":"iot:Connect","Resource":"*"}]}`,
		`{"Statement":[]}`,
	} {
		if _, err := broker.ParsePolicy([]byte(doc)); err == nil && !strings.Contains(doc, "[]") {
			t.Errorf("ParsePolicy accepted %s", doc)
		}
	}
	// A variable without a value never matches.
	p, _ = broker.ParsePolicy([]byte(`{"Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:r:a:client/${iot:Connection.Thing.ThingName}"}}`))
	if p.Allowed("iot:Connect", "arn:aws:iot:r:a:client/", map[string]string{"iot:ClientId": "x"}) {
		t.Fatal("unresolved thing name matched")
	}
}

// The behaviours a 3.1.1 device meets without an error of its own, seen through mosquitto_sub
// and mosquitto_pub: iot:Receive filters deliveries, a short keep-alive is raised to 30 s, and a
// second connection with the same client ID ends the first.
func TestAWSMosquitto311(t *testing.T) {
	// Every thing may publish and subscribe below things/; nothing below things/+/secret may be
	// received.
	b := startAWSWith(t, `{"Version": "2012-10-17", "Statement": [
	  {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"},
	  {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "arn:aws:iot:us-east-1:123456789012:topic/things/*"},
	  {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:us-east-1:123456789012:topicfilter/things/*"},
	  {"Effect": "Deny", "Action": "iot:Receive", "Resource": "arn:aws:iot:us-east-1:123456789012:topic/things/*/secret"}]}`, nil)
	client := func(id string) *mqtt.Client {
		cl, _ := b.Server().Clients.Get(id)
		return cl
	}
	sub := startCmd(t, "mosquitto_sub", mosqAWS(b, "thing-1", "-i", "thing-1", "-t", "things/#",
		"-q", "1", "-k", "5", "-C", "1", "-v", "-V", "mqttv311")...)
	waitFor(t, "mosquitto_sub's subscription", subscribed(b, "thing-1", 1))
	if ka := client("thing-1").State.Keepalive; ka != broker.AWSMinKeepAlive {
		t.Errorf("mosquitto_sub asked for keep-alive 5 s, the broker uses %d s; want %d", ka, broker.AWSMinKeepAlive)
	}
	for _, m := range []struct{ topic, payload string }{{"things/thing-2/secret", "hidden"}, {"things/thing-2/open", "visible"}} {
		if r := run(t, "mosquitto_pub", mosqAWS(b, "thing-2", "-i", "thing-2", "-t", m.topic, "-m", m.payload, "-q", "1", "-V", "mqttv311")...); r.code != 0 {
			t.Fatalf("mosquitto_pub to %s: %s", m.topic, r.out)
		}
	}
	if r := sub.wait(); r.err != nil || strings.TrimSpace(r.out) != "things/thing-2/open visible" {
		t.Fatalf("mosquitto_sub received %q (%v), want only the message on things/thing-2/open", r.out, r.err)
	}

	// Takeover: mosquitto_pub with mosquitto_sub's client ID ends mosquitto_sub's connection.
	sub = startCmd(t, "mosquitto_sub", mosqAWS(b, "thing-1", "-i", "thing-1", "-t", "things/#", "-V", "mqttv311")...)
	waitFor(t, "mosquitto_sub's subscription", subscribed(b, "thing-1", 1))
	first := client("thing-1")
	if r := run(t, "mosquitto_pub", mosqAWS(b, "thing-1", "-i", "thing-1", "-t", "things/thing-1/x", "-m", "m", "-q", "1", "-V", "mqttv311")...); r.code != 0 {
		t.Fatalf("mosquitto_pub: %s", r.out)
	}
	waitFor(t, "mosquitto_sub's connection to be taken over", first.Closed)
	sub.kill()
}

// MQTT 3.1 (protocol name MQIsdp, level 3) is refused: AWS IoT Core speaks 3.1.1 and 5 only.
func TestAWSRefusesMQTT31(t *testing.T) {
	b := startAWS(t)
	c := awsTLS(t, b, "thing-1")
	body := appendString(nil, "MQIsdp")
	body = append(body, 3, 0x02, 0, 60)
	if ack := connectRaw(t, c, encodePacket(0x10, appendString(body, "thing-1"))); ack[3] != 0x01 {
		t.Fatalf("CONNACK return code %#x, want 0x01 unacceptable protocol version", ack[3])
	}
}
