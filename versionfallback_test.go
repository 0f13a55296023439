package fennec_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// versionPeer is a broker without MQTT 5: it answers an MQTT 5 CONNECT with refusal (the
// MQTT 3.1.1 CONNACK with return code 1 when v5Answer is nil, else v5Answer) and accepts 3.1.1.
func versionPeer(t *testing.T, v5Answer []byte) (addr string, versions chan byte) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	versions = make(chan byte, 8)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 512)
				n, err := c.Read(buf)
				if err != nil || n < 9 {
					return
				}
				level := buf[8] // fixed header (2) + protocol name (6): the protocol level
				versions <- level
				if level == 5 {
					if v5Answer == nil {
						c.Write([]byte{0x20, 0x02, 0x00, 0x01})
					} else {
						c.Write(v5Answer)
					}
					return
				}
				c.Write([]byte{0x20, 0x02, 0x00, 0x00})
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return l.Addr().String(), versions
}

// VersionFallback: a broker that refuses MQTT 5 (a 3.1.1 CONNACK with return code 1, or
// CONNACK 0x84) gets MQTT 3.1.1 at once; without the option the refusal is Connect's error.
func TestVersionFallbackScripted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, answer := range map[string][]byte{"3.1.1 CONNACK 1": nil, "CONNACK 0x84": {0x20, 0x03, 0x00, 0x84, 0x00}} {
		addr, versions := versionPeer(t, answer)
		_, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + addr, DisableReconnect: true})
		var re *fennec.ReasonError
		if !errors.As(err, &re) || re.Packet != packet.CONNACK {
			t.Fatalf("%s without fallback: %v", name, err)
		}
		<-versions
		c, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + addr, DisableReconnect: true, VersionFallback: true})
		if err != nil {
			t.Fatalf("%s with fallback: %v", name, err)
		}
		if c.Version() != packet.V311 || <-versions != 5 || <-versions != 4 {
			t.Fatalf("%s: version %v", name, c.Version())
		}
		c.Close()
	}
	// a refusal that is not about the version is not retried
	addr, versions := versionPeer(t, []byte{0x20, 0x03, 0x00, 0x87, 0x00})
	if _, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + addr, DisableReconnect: true, VersionFallback: true}); err == nil {
		t.Fatal("connected through a 0x87 refusal")
	}
	select {
	case <-versions:
	default:
	}
	select {
	case v := <-versions:
		t.Fatalf("retried with version %d after 0x87", v)
	case <-time.After(100 * time.Millisecond):
	}
}

// startAedes starts aedes 0.51 (Node.js; MQTT 3.1.1 only), as make deps installs it, and
// returns its address; it skips, saying how to install it, when it is not there.
func startAedes(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FENNEC_PEERS_DIR")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Skip("no cache directory for the Node.js peers")
		}
		dir = filepath.Join(cache, "fennec-peers")
	}
	node, err := exec.LookPath("node")
	if err != nil || func() bool { _, err := os.Stat(filepath.Join(dir, "node_modules", "aedes")); return err != nil }() {
		t.Skipf("aedes is not installed in %s: make deps installs it (npm install --prefix %s aedes@0.51.3)", dir, dir)
	}
	script := `const aedes = require('aedes')(); const s = require('net').createServer(aedes.handle);
s.listen(0, '127.0.0.1', () => console.log(s.address().port));`
	cmd := exec.Command(node, "-e", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) // by its PID
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("aedes did not start: %v", err)
	}
	return "127.0.0.1:" + strings.TrimSpace(line)
}

// Against aedes 0.51, which has no MQTT 5 and answers an MQTT 5 CONNECT with a 3.1.1 CONNACK
// with return code 1: the fallback connects with 3.1.1 and a QoS 1 round trip works.
func TestVersionFallbackAedes(t *testing.T) {
	addr := startAedes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + addr, DisableReconnect: true}); err == nil {
		t.Fatal("aedes 0.51 accepted MQTT 5: it is not the peer this test needs")
	}
	c, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + addr, ClientID: "fallback", VersionFallback: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan string, 1)
	if _, err := c.Subscribe(ctx, func(m *fennec.Message) { got <- string(m.Payload) }, packet.Subscription{Filter: "fb/t", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, &fennec.Message{Topic: "fb/t", QoS: 1, Payload: []byte("over 3.1.1")}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p != "over 3.1.1" || c.Version() != packet.V311 {
			t.Fatalf("%q %v", p, c.Version())
		}
	case <-ctx.Done():
		t.Fatal("no message from aedes")
	}
}
