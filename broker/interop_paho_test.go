package broker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/broker/brokertest"
)

// pahoPython returns a python3 that imports paho-mqtt (Debian python3-paho-mqtt, which make
// deps installs), preferring the system one; the test is skipped, saying why, without it.
func pahoPython(t *testing.T) string {
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import paho.mqtt.client").Run() == nil {
			return py
		}
	}
	t.Skip("python3 with paho-mqtt not found (make deps installs python3-paho-mqtt)")
	return ""
}

// TestInteropPahoPython: Eclipse Paho Python against the embedded broker over TCP and TLS 1.3
// with a client certificate, MQTT 3.1.1 and 5, QoS 0, 1 and 2: a retained message, a stream of
// 20 in order, and a persistent session that gets what was published while it was away.
func TestInteropPahoPython(t *testing.T) {
	py := pahoPython(t)
	b := brokertest.Start(t, brokertest.Options{})
	for _, tr := range []string{"tcp", "tls"} {
		for _, v := range []int{4, 5} {
			for _, qos := range []int{0, 1, 2} {
				t.Run(fmt.Sprintf("%s/v%d/qos%d", tr, v, qos), func(t *testing.T) {
					t.Parallel() // each run waits on Paho's timers more than it works
					addr := b.TCPAddr
					if tr == "tls" {
						addr = b.TLSAddr
					}
					host, port, _ := net.SplitHostPort(addr)
					args := []string{"testdata/paho_interop.py", host, port, fmt.Sprint(v), fmt.Sprint(qos)}
					if tr == "tls" {
						args = append(args, b.CAFile, b.ClientCert, b.ClientKey)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					out, err := exec.CommandContext(ctx, py, args...).CombinedOutput()
					if err != nil {
						t.Fatalf("paho: %v\n%s", err, out)
					}
					var res struct {
						Got []struct {
							Topic, Payload string
							Qos            int
							Retain         bool
						}
						Stored []string
					}
					lines := strings.Split(strings.TrimSpace(string(out)), "\n")
					if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
						t.Fatalf("paho output: %v\n%s", err, out)
					}
					// The retained message (another topic) may come before or among the live ones:
					// order holds per topic [MQTT-4.6.0-6].
					var live []string
					retained := 0
					for _, m := range res.Got {
						switch {
						case strings.HasSuffix(m.Topic, "/r") && m.Retain && m.Payload == "retained":
							retained++
						case strings.HasSuffix(m.Topic, "/m") && m.Qos == qos && !m.Retain:
							live = append(live, m.Payload)
						default:
							t.Fatalf("unexpected message %+v", m)
						}
					}
					want := make([]string, 20)
					for i := range want {
						want[i] = fmt.Sprint(i)
					}
					if retained != 1 || strings.Join(live, ",") != strings.Join(want, ",") {
						t.Fatalf("retained %d (want 1), live %v (want 0..19 in order)\n%s", retained, live, out)
					}
					if strings.Join(res.Stored, ",") != "p0,p1,p2" {
						t.Fatalf("persistent session received %v, want p0,p1,p2", res.Stored)
					}
				})
			}
		}
	}
}

// TestInteropPahoC: the Eclipse Paho C command-line clients (paho_c_pub, paho_c_sub from
// paho.mqtt.c-examples) over TLS 1.3 with a client certificate, MQTT 3.1.1 and 5, QoS 2.
func TestInteropPahoC(t *testing.T) {
	for _, tool := range []string{"paho_c_pub", "paho_c_sub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found (make deps installs paho.mqtt.c-examples)", tool)
		}
	}
	b := brokertest.Start(t, brokertest.Options{})
	host, port, _ := net.SplitHostPort(b.TLSAddr)
	tlsArgs := []string{"-c", "ssl://" + net.JoinHostPort(host, port), "--cafile", b.CAFile, "--cert", b.ClientCert, "--key", b.ClientKey}
	for _, v := range []string{"311", "5"} {
		t.Run("v"+v, func(t *testing.T) {
			topic := "pahoc/" + v
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			sub := exec.CommandContext(ctx, "paho_c_sub", append([]string{"-t", topic, "-q", "2", "-V", v, "-i", "pahoc-sub-" + v}, tlsArgs...)...)
			stdout, err := sub.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			sub.Stderr = os.Stderr
			if err := sub.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { sub.Process.Kill(); sub.Wait() }() // the process this test started, by its PID
			lines := make(chan string, 16)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			// Publish until the subscriber shows a message (it may still be subscribing).
			for i := 0; ; i++ {
				pub := exec.CommandContext(ctx, "paho_c_pub", append([]string{"-t", topic, "-q", "2", "-V", v, "-i", "pahoc-pub-" + v, "-m", fmt.Sprint("hello ", i)}, tlsArgs...)...)
				if out, err := pub.CombinedOutput(); err != nil {
					t.Fatalf("paho_c_pub: %v\n%s", err, out)
				}
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatal("paho_c_sub ended")
					}
					if !strings.HasPrefix(l, "hello ") {
						t.Fatalf("paho_c_sub printed %q", l)
					}
					return
				case <-time.After(500 * time.Millisecond):
				case <-ctx.Done():
					t.Fatal("paho_c_sub received nothing")
				}
			}
		})
	}
}
