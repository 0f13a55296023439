package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
)

// Persistent sessions: QoS 1 and 2 messages published while the subscriber is offline are
// stored and delivered, in order, when it comes back [MQTT-3.1.2-5] [MQTT-4.6.0-1]; the session
// itself (its subscriptions) comes back too.

// runStdin is run with stdin.
func runStdin(t *testing.T, stdin, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, requireTool(t, name), args...)
	var out bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	r := result{out: out.String(), err: err}
	if cmd.ProcessState != nil {
		r.code = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %s: did not finish: %s", name, strings.Join(args, " "), r.out)
	}
	return r
}

// numbered returns n payloads "<prefix>-01" … in publishing order.
func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%02d", prefix, i+1)
	}
	return out
}

// offline waits until the broker holds the session of id with no connection.
func offline(t *testing.T, b *brokertest.Broker, id string) {
	t.Helper()
	waitFor(t, "the offline session of "+id, func() bool {
		cl, ok := b.Server().Clients.Get(id)
		return ok && cl.Closed()
	})
}

// stored waits until the offline session of id holds n messages. A publisher has its PUBACK
// (or PUBCOMP) before the broker routes the message to subscribers; a reconnect in between
// would race with the routing (see docs/broker.md on the takeover window).
func stored(t *testing.T, b *brokertest.Broker, id string, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d messages stored for %s", n, id), func() bool {
		cl, ok := b.Server().Clients.Get(id)
		return ok && cl.Closed() && b.Stored(id) >= n
	})
}

// receivedLines is the output of mosquitto_sub (one payload a line) as a slice.
func receivedLines(out string) []string {
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" {
			got = append(got, l)
		}
	}
	return got
}

func sameList(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// mosquittoOfflineQueue creates a persistent session with mosquitto_sub (subscribe, then leave),
// publishes msgs with mosquitto_pub (one connection, -l: in order) while it is offline, and
// returns what mosquitto_sub (subscribed to filter) receives when it comes back. sub and pub are
// the connection arguments of each side.
// plainSessionArgs returns mosquitto_pub/sub flags for b's plain listener with protocol v
// ("mqttv311" or "mqttv5"), and the subscriber's: the same, plus a session expiry of one hour
// for MQTT 5, where a session otherwise ends with the connection.
func plainSessionArgs(b *brokertest.Broker, v string) (conn, sub []string) {
	host, port := splitAddr(b.TCPAddr)
	conn = []string{"-h", host, "-p", port, "-V", v}
	sub = conn
	if v == "mqttv5" {
		sub = append(append([]string{}, conn...), "-x", "3600")
	}
	return conn, sub
}

func mosquittoOfflineQueue(t *testing.T, b *brokertest.Broker, id, qos, filter, topic string, sub, pub []string, msgs []string) []string {
	t.Helper()
	subArgs := append(append([]string{}, sub...), "-c", "-i", id, "-q", qos, "-t", filter)
	if r := run(t, "mosquitto_sub", append(subArgs, "-E")...); r.code != 0 {
		t.Fatalf("mosquitto_sub -E: exit %d: %s", r.code, r.out)
	}
	offline(t, b, id)
	pubArgs := append(append([]string{}, pub...), "-q", qos, "-t", topic, "-l")
	if r := runStdin(t, strings.Join(msgs, "\n")+"\n", "mosquitto_pub", pubArgs...); r.code != 0 {
		t.Fatalf("mosquitto_pub: exit %d: %s", r.code, r.out)
	}
	stored(t, b, id, len(msgs))
	// -W bounds a broken run; the test does not depend on its length.
	r := run(t, "mosquitto_sub", append(subArgs, "-C", fmt.Sprint(len(msgs)), "-W", "20")...)
	if r.code != 0 {
		t.Fatalf("mosquitto_sub after reconnecting: exit %d (27: timed out): %q", r.code, r.out)
	}
	return receivedLines(r.out)
}

// The reported case, widened: mosquitto_sub -c, offline, mosquitto_pub, mosquitto_sub -c again,
// for MQTT 3.1.1 (clean session 0) and MQTT 5 (session expiry 3600 s), QoS 1 and 2, on the plain
// listener. Ten messages published in the same second come back in their order.
func TestOfflineQueueMosquitto(t *testing.T) {
	for _, v := range []string{"mqttv311", "mqttv5"} {
		for _, qos := range []string{"1", "2"} {
			t.Run(v+"/qos"+qos, func(t *testing.T) {
				b := brokertest.Start(t, brokertest.Options{})
				conn, sub := plainSessionArgs(b, v)
				msgs := numbered("m", 10)
				got := mosquittoOfflineQueue(t, b, "offline-sub", qos, "queue/t", "queue/t", sub, conn, msgs)
				sameList(t, "messages after reconnecting", got, msgs)
			})
		}
	}
}

// More messages queued than mochi's table of the session has free packet identifiers below the
// first one mosquitto_sub uses for its SUBSCRIBE: the SUBSCRIBE sent again at reconnect is
// granted although identifier 1 names a stored message (mosquitto_sub exits with "All
// subscription requests were denied" otherwise), and 20 QoS 2 messages (mosquitto's Receive
// Maximum) arrive in order.
func TestOfflineQueueResubscribeSameID(t *testing.T) {
	for _, v := range []string{"mqttv311", "mqttv5"} {
		t.Run(v, func(t *testing.T) {
			b := brokertest.Start(t, brokertest.Options{})
			conn, sub := plainSessionArgs(b, v)
			msgs := numbered("q2", 20)
			got := mosquittoOfflineQueue(t, b, "resub", "2", "queue/#", "queue/t", sub, conn, msgs)
			sameList(t, "messages after reconnecting", got, msgs)
		})
	}
}

// The same over TLS 1.3 with client certificates and an ACL: the stored messages are authorized
// with the rules of the identity the subscriber had (the cause of the reported loss: the ACL
// check of a delivery to an offline client found no identity and refused every message). A
// message the identity may not receive is not stored.
func TestOfflineQueueTLSWithACL(t *testing.T) {
	acl := &broker.ACL{Users: []broker.User{
		{Name: "reader", Rules: broker.Rules{Subscribe: []string{"queue/ok/#", "queue/+"}}},
		{Name: "writer", Rules: broker.Rules{Publish: []string{"queue/#"}}},
	}}
	b := brokertest.Start(t, brokertest.Options{Clients: []string{"reader", "writer"}, ACL: acl})
	for _, v := range []string{"mqttv311", "mqttv5"} {
		t.Run(v, func(t *testing.T) {
			sub := append(tlsArgs(b, b.Files.ClientCert["reader"], b.Files.ClientKey["reader"]), "-V", v)
			pub := append(tlsArgs(b, b.Files.ClientCert["writer"], b.Files.ClientKey["writer"]), "-V", v)
			if v == "mqttv5" {
				sub = append(sub, "-x", "3600")
			}
			id := "acl-sub-" + v
			subArgs := append(append([]string{}, sub...), "-c", "-i", id, "-q", "1", "-t", "queue/ok/#", "-t", "queue/+")
			if r := run(t, "mosquitto_sub", append(subArgs, "-E")...); r.code != 0 {
				t.Fatalf("mosquitto_sub -E: exit %d: %s", r.code, r.out)
			}
			offline(t, b, id)
			for _, m := range []struct{ topic, payload string }{
				{"queue/ok/a", "one"}, {"queue/x", "two"}, {"queue/ok/b/c", "three"},
			} {
				if r := run(t, "mosquitto_pub", append(pub, "-q", "1", "-t", m.topic, "-m", m.payload)...); r.code != 0 {
					t.Fatalf("mosquitto_pub %s: exit %d: %s", m.topic, r.code, r.out)
				}
			}
			stored(t, b, id, 3)
			r := run(t, "mosquitto_sub", append(subArgs, "-C", "3", "-W", "20", "-v")...)
			if r.code != 0 {
				t.Fatalf("mosquitto_sub after reconnecting: exit %d: %q", r.code, r.out)
			}
			sameList(t, "messages after reconnecting", receivedLines(r.out),
				[]string{"queue/ok/a one", "queue/x two", "queue/ok/b/c three"})
		})
	}
}

// AWS IoT Core emulation: a device's persistent session stores QoS 1 messages it may receive
// (iot:Receive) and not those it may not; MQTT 5 session expiry is capped at AWS's one hour.
func TestOfflineQueueAWS(t *testing.T) {
	const policy = `{"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"},
    {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "arn:aws:iot:us-east-1:123456789012:topic/things/*"},
    {"Effect": "Deny", "Action": "iot:Receive", "Resource": "arn:aws:iot:us-east-1:123456789012:topic/things/*/secret"},
    {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:us-east-1:123456789012:topicfilter/things/${iot:ClientId}/*"}]}`
	b := startAWSWith(t, policy, nil)
	for _, v := range []string{"mqttv311", "mqttv5"} {
		t.Run(v, func(t *testing.T) {
			sub := append(mosqAWS(b, "thing-1"), "-V", v, "-c", "-i", "thing-1", "-q", "1", "-t", "things/thing-1/#")
			if v == "mqttv5" {
				sub = append(sub, "-x", "7200")
			}
			if r := run(t, "mosquitto_sub", append(sub, "-E")...); r.code != 0 {
				t.Fatalf("mosquitto_sub -E: exit %d: %s", r.code, r.out)
			}
			offline(t, b, "thing-1")
			if v == "mqttv5" {
				cl, _ := b.Server().Clients.Get("thing-1")
				if got := cl.Properties.Props.SessionExpiryInterval; got != broker.AWSSessionExpiry {
					t.Errorf("session expiry %d s, want AWS's %d s", got, broker.AWSSessionExpiry)
				}
			}
			pub := append(mosqAWS(b, "thing-2"), "-V", v, "-i", "thing-2", "-q", "1")
			for _, m := range []struct{ topic, payload string }{
				{"things/thing-1/secret", "hidden"}, {"things/thing-1/a", "one"}, {"things/thing-1/b", "two"},
			} {
				if r := run(t, "mosquitto_pub", append(pub, "-t", m.topic, "-m", m.payload)...); r.code != 0 {
					t.Fatalf("mosquitto_pub %s: exit %d: %s", m.topic, r.code, r.out)
				}
			}
			stored(t, b, "thing-1", 2)
			r := run(t, "mosquitto_sub", append(sub, "-C", "2", "-W", "20", "-v")...)
			if r.code != 0 {
				t.Fatalf("mosquitto_sub after reconnecting: exit %d: %q", r.code, r.out)
			}
			sameList(t, "messages after reconnecting", receivedLines(r.out),
				[]string{"things/thing-1/a one", "things/thing-1/b two"})
		})
	}
}

// An MQTT 5 session with Session Expiry Interval 0 ends with its connection [MQTT-3.1.2-23]:
// nothing is stored, and the next connection starts without session. (mosquitto_sub -c without
// -x asks for a session that never expires.) The first message the
// subscriber receives after coming back is one published after it subscribed again.
func TestNoSessionExpiryStoresNothing(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	host, port := splitAddr(b.TCPAddr)
	conn := []string{"-h", host, "-p", port, "-V", "mqttv5"}
	subArgs := append(append([]string{}, conn...), "-c", "-x", "0", "-i", "no-expiry", "-q", "1", "-t", "queue/t")
	if r := run(t, "mosquitto_sub", append(subArgs, "-E")...); r.code != 0 {
		t.Fatalf("mosquitto_sub -E: exit %d: %s", r.code, r.out)
	}
	waitFor(t, "the session to end", func() bool { _, ok := b.Server().Clients.Get("no-expiry"); return !ok })
	if r := run(t, "mosquitto_pub", append(conn, "-q", "1", "-t", "queue/t", "-m", "while-away")...); r.code != 0 {
		t.Fatalf("mosquitto_pub: %s", r.out)
	}
	p := startCmd(t, "mosquitto_sub", append(subArgs, "-C", "1")...)
	waitFor(t, "the new subscription", subscribed(b, "no-expiry", 1))
	if r := run(t, "mosquitto_pub", append(conn, "-q", "1", "-t", "queue/t", "-m", "after")...); r.code != 0 {
		t.Fatalf("mosquitto_pub: %s", r.out)
	}
	if r := p.wait(); r.code != 0 || strings.TrimSpace(r.out) != "after" {
		t.Fatalf("first message after reconnecting: exit %d, %q; want \"after\"", r.code, r.out)
	}
}

// At the limit of stored messages (Options.MaxStoredMessages; mochi's Capabilities.MaximumInflight; 5
// here), further messages for the offline session are dropped for it alone: the publisher still
// succeeds, the first five arrive after the reconnect, and the next message is a new one.
func TestOfflineQueueLimit(t *testing.T) {
	b, err := broker.New(broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b.Server().Options.Capabilities.MaximumInflight = 5 // before Start: no client reads it yet
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	host, port := splitAddr(b.Addr())
	conn := []string{"-h", host, "-p", port}
	subArgs := append(append([]string{}, conn...), "-c", "-i", "limited", "-q", "1", "-t", "queue/t")
	if r := run(t, "mosquitto_sub", append(subArgs, "-E")...); r.code != 0 {
		t.Fatalf("mosquitto_sub -E: %s", r.out)
	}
	waitFor(t, "the offline session", func() bool { cl, ok := b.Server().Clients.Get("limited"); return ok && cl.Closed() })
	msgs := numbered("m", 8)
	if r := runStdin(t, strings.Join(msgs, "\n")+"\n", "mosquitto_pub", append(conn, "-q", "1", "-t", "queue/t", "-l")...); r.code != 0 {
		t.Fatalf("mosquitto_pub: exit %d: %s", r.code, r.out)
	}
	waitFor(t, "3 messages dropped", func() bool { return atomic.LoadInt64(&b.Server().Info.InflightDropped) >= 3 })
	p := startCmd(t, "mosquitto_sub", append(subArgs, "-C", "6")...)
	waitFor(t, "the stored messages", func() bool { return strings.Count(p.output(), "\n") >= 5 })
	if r := run(t, "mosquitto_pub", append(conn, "-q", "1", "-t", "queue/t", "-m", "after")...); r.code != 0 {
		t.Fatalf("mosquitto_pub: %s", r.out)
	}
	r := p.wait()
	sameList(t, "messages after reconnecting", receivedLines(r.out), append(msgs[:5:5], "after"))
}

// An MQTT 5 session with a Session Expiry Interval of 3 s is discarded by mochi after it has
// passed, and the broker forgets what it kept for it; the next connection starts without
// session and gets nothing of what was published meanwhile. (With 1 s the session expired,
// once under load, before the records kept for it were checked.)
func TestSessionExpiryForgets(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	host, port := splitAddr(b.TCPAddr)
	conn := []string{"-h", host, "-p", port, "-V", "mqttv5"}
	subArgs := append(append([]string{}, conn...), "-c", "-x", "3", "-i", "expiring", "-q", "1", "-t", "queue/t")
	if r := run(t, "mosquitto_sub", append(subArgs, "-E")...); r.code != 0 {
		t.Fatalf("mosquitto_sub -E: %s", r.out)
	}
	offline(t, b, "expiring")
	if r := run(t, "mosquitto_pub", append(conn, "-q", "1", "-t", "queue/t", "-m", "stored")...); r.code != 0 {
		t.Fatalf("mosquitto_pub: %s", r.out)
	}
	stored(t, b, "expiring", 1)
	if parked, order, _ := b.SessionRecords("expiring"); !parked || !order {
		t.Fatalf("offline session records: identity %v, order %v", parked, order)
	}
	// mochi checks once a second; the wait ends as soon as the session is gone.
	waitFor(t, "the session to expire", func() bool { _, ok := b.Server().Clients.Get("expiring"); return !ok })
	if parked, order, ids := b.SessionRecords("expiring"); parked || order || ids {
		t.Fatalf("records left after expiry: identity %v, order %v, identifiers %v", parked, order, ids)
	}
	p := startCmd(t, "mosquitto_sub", append(subArgs, "-C", "1")...)
	waitFor(t, "the new subscription", subscribed(b, "expiring", 1))
	if r := run(t, "mosquitto_pub", append(conn, "-q", "1", "-t", "queue/t", "-m", "new")...); r.code != 0 {
		t.Fatalf("mosquitto_pub: %s", r.out)
	}
	if r := p.wait(); r.code != 0 || r.out != "new\n" {
		t.Fatalf("after expiry: exit %d, %q; want only the new message", r.code, r.out)
	}
}
