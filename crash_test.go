package fennec_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/session/filestore"
)

const crashMessages = 300

// TestCrashChild is the child process of TestCrashDurableStore; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	mode := os.Getenv("FENNEC_CRASH_MODE")
	if mode == "" {
		t.Skip("child process of TestCrashDurableStore")
	}
	store, err := filestore.Open(os.Getenv("FENNEC_CRASH_STORE"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cfg := fennec.Config{Server: "mqtt://" + os.Getenv("FENNEC_CRASH_ADDR"), ClientID: "fennec-crash",
		SessionExpiry: time.Hour, Store: store, KeepAlive: -1}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := fennec.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case "publish":
		for i := 0; i < crashMessages; i++ {
			tok := c.PublishAsync(context.Background(), &fennec.Message{Topic: "crash/test", QoS: packet.QoS(1 + i%2), Payload: []byte(strconv.Itoa(i))})
			select {
			case <-tok.Done():
				if tok.Err() != nil {
					t.Fatal(tok.Err())
				}
			default:
			}
			fmt.Printf("accepted %d\n", i) // the parent kills us with SIGKILL after the last one
		}
		select {} // wait for SIGKILL
	case "resume":
		for c.Pending() > 0 {
			select {
			case <-ctx.Done():
				t.Fatalf("%d messages still pending", c.Pending())
			case <-time.After(10 * time.Millisecond):
			}
		}
		if err := c.Disconnect(ctx); err != nil {
			t.Fatal(err)
		}
		fmt.Println("resumed")
	}
}

// stallProxy forwards TCP to target until limit bytes went upstream, then stops forwarding in
// both directions: the broker has some messages, the client's acknowledgements stop, and the
// rest stays in flight — the state a crash must not lose.
func stallProxy(t *testing.T, target string, limit int64) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var conns []net.Conn
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			cc, err := l.Accept()
			if err != nil {
				return
			}
			bc, err := net.Dial("tcp", target)
			if err != nil {
				cc.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, cc, bc)
			mu.Unlock()
			var stalled atomic.Bool
			wg.Add(2)
			go func() {
				defer wg.Done()
				buf := make([]byte, 64)
				var n int64
				for n < limit {
					k, err := cc.Read(buf[:min(int64(len(buf)), limit-n)])
					if err != nil {
						return
					}
					bc.Write(buf[:k])
					n += int64(k)
				}
				stalled.Store(true)
			}()
			go func() {
				defer wg.Done()
				buf := make([]byte, 1)
				for !stalled.Load() {
					k, err := bc.Read(buf)
					if err != nil {
						return
					}
					if !stalled.Load() {
						cc.Write(buf[:k])
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// TestCrashDurableStore: a process publishing QoS 1/2 with a durable store is killed with
// SIGKILL while messages are in flight; a new process with the same client ID and store
// delivers every message Publish had accepted, QoS 2 ones exactly once.
func TestCrashDurableStore(t *testing.T) {
	if os.Getenv("FENNEC_CRASH_MODE") != "" {
		t.Skip()
	}
	b := startMosquitto(t)
	ctx := testCtx(t)
	var mu sync.Mutex
	count := map[string]int{}
	got := make(chan struct{}, crashMessages*2)
	subC := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, CleanStart: true})
	if _, err := subC.Subscribe(ctx, func(m *fennec.Message) {
		mu.Lock()
		count[string(m.Payload)]++
		mu.Unlock()
		got <- struct{}{}
	}, sub("crash/test", 2)); err != nil {
		t.Fatal(err)
	}
	storePath := filepath.Join(t.TempDir(), "session.db")
	proxy := stallProxy(t, b.Addr, 2500)

	child := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	child.Env = append(os.Environ(), "FENNEC_CRASH_MODE=publish", "FENNEC_CRASH_ADDR="+proxy, "FENNEC_CRASH_STORE="+storePath)
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	accepted := -1
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "accepted "); ok {
			accepted, _ = strconv.Atoi(n)
			if accepted == crashMessages-1 {
				break
			}
		}
	}
	child.Process.Kill() // SIGKILL
	go io.Copy(io.Discard, out)
	child.Wait()
	if accepted != crashMessages-1 {
		t.Fatalf("child accepted %d messages before dying", accepted+1)
	}
	mu.Lock()
	before := len(count)
	mu.Unlock()
	if before >= crashMessages {
		t.Fatalf("all %d messages arrived before the crash: the test did not crash mid-stream", before)
	}
	t.Logf("%d of %d messages reached the subscriber before SIGKILL", before, crashMessages)

	resume := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	resume.Env = append(os.Environ(), "FENNEC_CRASH_MODE=resume", "FENNEC_CRASH_ADDR="+b.Addr, "FENNEC_CRASH_STORE="+storePath)
	if outb, err := resume.CombinedOutput(); err != nil {
		t.Fatalf("restarted process: %v\n%s", err, outb)
	}
	deadline := time.After(15 * time.Second)
	for {
		mu.Lock()
		n := len(count)
		mu.Unlock()
		if n == crashMessages {
			break
		}
		select {
		case <-got:
		case <-deadline:
			mu.Lock()
			var missing []int
			for i := 0; i < crashMessages; i++ {
				if count[strconv.Itoa(i)] == 0 {
					missing = append(missing, i)
				}
			}
			mu.Unlock()
			t.Fatalf("after restart %d of %d messages arrived; missing %v", n, crashMessages, missing)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < crashMessages; i += 2 {
		if n := count[strconv.Itoa(i)]; n != 1 {
			t.Errorf("QoS 2 message %d arrived %d times", i, n)
		}
	}
}
