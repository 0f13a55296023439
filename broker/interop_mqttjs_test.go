package broker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
)

// mqttjsScript drives MQTT.js (npm mqtt 5.16) against the broker; CFG (JSON) says what to do:
//   - roundtrip: subscribe to topic and to retained, get the retained message (flagged), publish
//     n messages at qos and get them back in order;
//   - persist-sub: connect without clean start, subscribe at QoS 1, leave;
//   - persist-collect: reconnect to that session and collect n stored messages;
//   - will: connect with a will and wait to be killed.
//
// It prints one JSON line: {"got": [...], "retain": bool, "sessionPresent": bool}, or "ready".
const mqttjsScript = `
const mqtt = require('mqtt'); const fs = require('fs');
const cfg = JSON.parse(process.env.CFG);
function opts(extra) {
  const o = {protocolVersion: cfg.version, clientId: cfg.clientId, clean: true, reconnectPeriod: 0, connectTimeout: 5000};
  if (cfg.ca) { Object.assign(o, {ca: fs.readFileSync(cfg.ca), cert: fs.readFileSync(cfg.cert), key: fs.readFileSync(cfg.key), rejectUnauthorized: true, servername: 'localhost'}); }
  return Object.assign(o, extra);
}
function collect(c, n, filter) {
  const got = []; let retain = false;
  return new Promise(res => c.on('message', (t, p, pkt) => {
    if (filter && t !== filter) { return; }
    got.push(p.toString()); if (n === 0 || got.length === n) res({got, retain});
  }));
}
async function main() {
  const persistent = {clean: false};
  if (cfg.version === 5) { persistent.properties = {sessionExpiryInterval: 3600}; }
  if (cfg.mode === 'roundtrip') {
    const c = await mqtt.connectAsync(cfg.url, opts({}));
    const retained = new Promise(res => c.on('message', (t, p, pkt) => { if (t === cfg.retainedTopic) res({payload: p.toString(), retain: pkt.retain}); }));
    const msgs = collect(c, cfg.n, cfg.topic);
    await c.subscribeAsync({[cfg.topic]: {qos: cfg.qos}, [cfg.retainedTopic]: {qos: cfg.qos}});
    const r = await retained;
    for (let i = 0; i < cfg.n; i++) { await c.publishAsync(cfg.topic, 'm' + i, {qos: cfg.qos}); }
    const m = await msgs;
    await c.endAsync();
    console.log(JSON.stringify({got: m.got, retained: r.payload, retain: r.retain}));
  } else if (cfg.mode === 'persist-sub') {
    const c = await mqtt.connectAsync(cfg.url, opts(persistent));
    await c.subscribeAsync(cfg.topic, {qos: 1});
    await c.endAsync();
    console.log(JSON.stringify({got: []}));
  } else if (cfg.mode === 'persist-collect') {
    const c = mqtt.connect(cfg.url, opts(persistent));
    const present = new Promise(res => c.on('connect', ack => res(ack.sessionPresent)));
    const m = await collect(c, cfg.n, cfg.topic);
    const sp = await present;
    await c.endAsync();
    console.log(JSON.stringify({got: m.got, sessionPresent: sp}));
  } else if (cfg.mode === 'will') {
    await mqtt.connectAsync(cfg.url, opts({will: {topic: cfg.topic, payload: Buffer.from('gone'), qos: 1, retain: false}}));
    console.log('ready');
    setInterval(() => {}, 1000);
  }
}
main().catch(e => { console.error('mqtt.js: ' + e.message); process.exit(1); });
`

// mqttjs finds MQTT.js as make deps installs it, or skips saying how.
func mqttjs(t *testing.T) (node, dir string) {
	t.Helper()
	dir = os.Getenv("FENNEC_PEERS_DIR")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Skip("no cache directory for the Node.js peers")
		}
		dir = filepath.Join(cache, "fennec-peers")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: make deps installs MQTT.js with npm")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "mqtt")); err != nil {
		t.Skipf("MQTT.js is not installed in %s: make deps installs it (npm install --prefix %s mqtt@5.16.0)", dir, dir)
	}
	return node, dir
}

type mqttjsResult struct {
	Got            []string `json:"got"`
	Retained       string   `json:"retained"`
	Retain         bool     `json:"retain"`
	SessionPresent bool     `json:"sessionPresent"`
}

// runMQTTjs runs the script with cfg and returns its result line.
func runMQTTjs(t *testing.T, cfg map[string]any) mqttjsResult {
	t.Helper()
	node, dir := mqttjs(t)
	b, _ := json.Marshal(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "-e", mqttjsScript)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"), "CFG="+string(b))
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("MQTT.js %v: %v\n%s%s", cfg["mode"], err, out, stderr)
	}
	var r mqttjsResult
	if err := json.Unmarshal([]byte(strings.TrimSpace(string(out))), &r); err != nil {
		t.Fatalf("MQTT.js printed %q: %v", out, err)
	}
	return r
}

// mqttjsTarget is the URL and TLS files of one transport.
func mqttjsTarget(b *brokertest.Broker, tls bool) map[string]any {
	if !tls {
		return map[string]any{"url": "mqtt://" + b.TCPAddr}
	}
	return map[string]any{"url": "mqtts://" + b.TLSAddr, "ca": b.CAFile, "cert": b.ClientCert, "key": b.ClientKey}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// TestInteropMQTTjs: MQTT.js 5.16 (npm) against the embedded broker over plain TCP and TLS 1.3
// with a client certificate, MQTT 3.1.1 and 5: QoS 0, 1 and 2 round trips in order, a retained
// message, a persistent session whose stored messages arrive at the reconnect, and a will.
func TestInteropMQTTjs(t *testing.T) {
	mqttjs(t)
	b := brokertest.Start(t, brokertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fc, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.TCPAddr, CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	if err := fc.Publish(ctx, &fennec.Message{Topic: "js/retained", QoS: 1, Retain: true, Payload: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("m%d", i))
	}
	for _, tls := range []bool{false, true} {
		for _, v := range []int{4, 5} {
			target := mqttjsTarget(b, tls)
			name := fmt.Sprintf("%s/v%d", map[bool]string{false: "tcp", true: "tls"}[tls], v)
			for _, qos := range []int{0, 1, 2} {
				t.Run(fmt.Sprintf("%s/qos%d", name, qos), func(t *testing.T) {
					topic := fmt.Sprintf("js/%s/q%d", name, qos)
					r := runMQTTjs(t, with(target, "mode", "roundtrip", "version", v, "qos", qos, "n", n,
						"clientId", "js-"+strings.ReplaceAll(topic, "/", "-"), "topic", topic, "retainedTopic", "js/retained"))
					sameList(t, "round trip", r.Got, want)
					if r.Retained != "kept" || !r.Retain {
						t.Fatalf("retained message %q, retain flag %v", r.Retained, r.Retain)
					}
				})
			}
			t.Run(name+"/session", func(t *testing.T) {
				id := "js-session-" + strings.ReplaceAll(name, "/", "-")
				topic := "js/session/" + name
				runMQTTjs(t, with(target, "mode", "persist-sub", "version", v, "clientId", id, "topic", topic))
				offline(t, b, id)
				for _, m := range want[:5] {
					if err := fc.Publish(ctx, &fennec.Message{Topic: topic, QoS: 1, Payload: []byte(m)}); err != nil {
						t.Fatal(err)
					}
				}
				stored(t, b, id, 5)
				r := runMQTTjs(t, with(target, "mode", "persist-collect", "version", v, "clientId", id, "topic", topic, "n", 5))
				if !r.SessionPresent {
					t.Fatal("CONNACK without session present for the persistent session")
				}
				sameList(t, "stored messages", r.Got, want[:5])
			})
			t.Run(name+"/will", func(t *testing.T) {
				topic := "js/will/" + name
				got := make(chan string, 1)
				if _, err := fc.Subscribe(ctx, func(m *fennec.Message) { got <- string(m.Payload) }, packet.Subscription{Filter: topic, QoS: 1}); err != nil {
					t.Fatal(err)
				}
				node, dir := mqttjs(t)
				cfg, _ := json.Marshal(with(target, "mode", "will", "version", v, "clientId", "js-will-"+strings.ReplaceAll(name, "/", "-"), "topic", topic))
				cmd := exec.Command(node, "-e", mqttjsScript)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"), "CFG="+string(cfg))
				out, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				line, _ := bufio.NewReader(out).ReadString('\n')
				if strings.TrimSpace(line) != "ready" {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("MQTT.js with a will: %q", line)
				}
				cmd.Process.Kill() // by its PID: the connection ends without DISCONNECT
				cmd.Wait()
				select {
				case m := <-got:
					if m != "gone" {
						t.Fatalf("will payload %q", m)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("the will of a killed MQTT.js client was not published")
				}
			})
		}
	}
}
