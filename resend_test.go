package fennec_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// TestQoS2ResentAfterReleaseCounted: a broker that sends a QoS 2 message again, DUP and
// identical, after its handshake finished (PUBREL, PUBCOMP) gets it delivered again — the
// protocol makes it a new message [MQTT-4.3.3-9] — and the client counts it in Stats and says so
// in the trace. A new message that reuses the ID (no DUP, or other content) is not counted, and a
// duplicate before PUBREL is neither delivered again nor counted.
func TestQoS2ResentAfterReleaseCounted(t *testing.T) {
	for _, v := range versions {
		t.Run(vname(v), func(t *testing.T) {
			leakCheck(t)
			fb := startFake(t, v)
			var got atomic.Int64
			var mu sync.Mutex
			var notes []string
			cfg := fastReconnect(fb.url(), v)
			cfg.DefaultHandler = func(*fennec.Message) { got.Add(1) }
			cfg.Trace = func(e fennec.TraceEvent) {
				if e.Packet == nil && e.Note != "" {
					mu.Lock()
					notes = append(notes, e.Note)
					mu.Unlock()
				}
			}
			c, fc := connectFake(t, fb, cfg, false)
			handshake := func(p *packet.Publish) {
				t.Helper()
				fc.write(p)
				fc.readType(packet.PUBREC)
				fc.write(&packet.Pubrel{PacketID: p.PacketID})
				fc.readType(packet.PUBCOMP)
			}
			msg := func(dup bool, payload string) *packet.Publish {
				return &packet.Publish{Topic: "t", QoS: 2, PacketID: 7, Dup: dup, Payload: []byte(payload)}
			}
			handshake(msg(false, "one"))
			handshake(msg(true, "one"))  // resent after PUBREL: delivered, counted
			handshake(msg(false, "one")) // a new message with the same ID and content: not DUP
			handshake(msg(true, "two"))  // DUP, but not the message this ID carried last
			// A duplicate before PUBREL: answered with PUBREC, not delivered again.
			fc.write(msg(false, "three"))
			fc.readType(packet.PUBREC)
			fc.write(msg(true, "three"))
			fc.readType(packet.PUBREC)
			fc.write(&packet.Pubrel{PacketID: 7})
			fc.readType(packet.PUBCOMP)
			if n := got.Load(); n != 5 {
				t.Fatalf("delivered %d, want 5", n)
			}
			if n := c.Stats().QoS2ResentAfterRelease; n != 1 {
				t.Fatalf("Stats.QoS2ResentAfterRelease = %d, want 1", n)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(notes) != 1 || !strings.Contains(notes[0], "after its PUBREL") {
				t.Fatalf("trace notes %q, want one about the resend", notes)
			}
		})
	}
}

// TestMosquittoSnapshotResendsQoS2: the trace behind "mosquitto re-sends a QoS 2 PUBLISH after
// PUBREL". mosquitto with persistence writes its state every autosave_interval seconds (default
// 1,800) and on a clean shutdown. Killed with SIGKILL and restarted, it restores the last
// snapshot: messages it had queued or in flight for the subscriber then are sent again, though
// they were delivered since, and messages it acknowledged to the publisher since are gone.
// Resends of in-flight QoS 2 messages come marked DUP with the packet ID of a finished handshake:
// Fennec delivers them again, as the protocol says, and counts them
// (Stats.QoS2ResentAfterRelease). Messages from the restored queue come as new ones, with new
// IDs, and nothing can tell them apart. Before the kill no message is delivered twice.
func TestMosquittoSnapshotResendsQoS2(t *testing.T) {
	for _, onChanges := range []bool{false, true} {
		t.Run(fmt.Sprintf("autosave_on_changes=%v", onChanges), func(t *testing.T) {
			testMosquittoSnapshot(t, onChanges)
		})
	}
}

func testMosquittoSnapshot(t *testing.T, onChanges bool) {
	b := startMosquitto(t, "persistence true", "persistence_file mosquitto.db", "autosave_interval 1",
		fmt.Sprintf("autosave_on_changes %v", onChanges), "max_queued_messages 0", "max_inflight_messages 20")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	var mu sync.Mutex
	seen := map[string]int{}
	dupFlag := 0
	subCfg := fennec.Config{Server: "mqtt://" + b.Addr, ClientID: "snap-sub", SessionExpiry: time.Hour,
		Backoff: func(int) time.Duration { return 20 * time.Millisecond }}
	sc, err := fennec.Connect(ctx, subCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if _, err := sc.Subscribe(ctx, func(m *fennec.Message) {
		time.Sleep(time.Millisecond) // slower than the publisher: mosquitto queues for us
		mu.Lock()
		seen[string(m.Payload)]++
		if seen[string(m.Payload)] > 1 && m.Dup {
			dupFlag++
		}
		mu.Unlock()
	}, sub("snap/t", 2)); err != nil {
		t.Fatal(err)
	}
	pc, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.Addr, ClientID: "snap-pub", SessionExpiry: time.Hour,
		Backoff: func(int) time.Duration { return 20 * time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	dups := func() (d, distinct int) {
		mu.Lock()
		defer mu.Unlock()
		for _, k := range seen {
			d += k - 1
		}
		return d, len(seen)
	}
	const n = 3000
	killAt := n / 2
	for i := 0; i < n; i++ {
		if i == killAt {
			time.Sleep(1500 * time.Millisecond) // at least one snapshot with the queue under way
			if d, _ := dups(); d != 0 {
				t.Fatalf("%d duplicates before mosquitto was killed", d)
			}
			b.Kill()
			if err := b.Restart(); err != nil {
				t.Fatal(err)
			}
		}
		if err := pc.Publish(ctx, &fennec.Message{Topic: "snap/t", QoS: 2, Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	// Wait until everything arrived, or nothing more arrives for a second (the broker lost some).
	last, lastChange := -1, time.Now()
	for {
		_, k := dups()
		if k != last {
			last, lastChange = k, time.Now()
		}
		if k >= n || time.Since(lastChange) > time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	d, k := dups()
	st := sc.Stats()
	mu.Lock()
	df := dupFlag
	mu.Unlock()
	t.Logf("after SIGKILL and restart: %d of %d received, %d lost, %d delivered twice (%d of them marked DUP); Stats %+v",
		k, n, n-k, d, df, st)
	if uint64(df) < st.QoS2ResentAfterRelease {
		t.Fatalf("counted %d resends after PUBREL but saw %d DUP duplicates", st.QoS2ResentAfterRelease, df)
	}
}

// TestResubscribeAfterBrokerCrash: mosquitto with persistence, killed with SIGKILL before its
// next snapshot and restarted, reports the subscriber's session present without its
// subscription. With the default policy an MQTT 5 client subscribes again anyway (Retain
// Handling 1: nothing retained is sent twice) and receives; so does a 3.1.1 client with
// ResubscribeAlways. A 3.1.1 client that trusts Session Present (the default there, since its
// SUBSCRIBE would resend retained messages) receives nothing: the protocol gives it no way to
// know, which the test records.
func TestResubscribeAfterBrokerCrash(t *testing.T) {
	for _, tc := range []struct {
		v      packet.Version
		policy fennec.ResubscribePolicy
		want   int64
	}{
		{packet.V5, fennec.ResubscribeAuto, 1},
		{packet.V311, fennec.ResubscribeAlways, 1},
		{packet.V311, fennec.ResubscribeAuto, 0},
		{packet.V5, fennec.ResubscribeWhenLost, 0},
	} {
		t.Run(fmt.Sprintf("%s/policy=%d", vname(tc.v), tc.policy), func(t *testing.T) {
			b := startMosquitto(t, "persistence true", "persistence_file mosquitto.db", "autosave_interval 1", "autosave_on_changes true")
			ctx := testCtx(t)
			var got, subscribes atomic.Int64 // messages received; SUBSCRIBEs sent
			var present []bool
			var mu sync.Mutex
			sc, err := fennec.Connect(ctx, fennec.Config{Server: "mqtt://" + b.Addr, Version: tc.v, ClientID: "resub", SessionExpiry: time.Hour,
				Resubscribe: tc.policy, Backoff: func(int) time.Duration { return 20 * time.Millisecond },
				Trace: func(e fennec.TraceEvent) {
					if e.Outbound && e.Packet != nil && e.Packet.Type() == packet.SUBSCRIBE {
						subscribes.Add(1)
					}
				},
				OnConnectionUp: func(_ *fennec.Client, ack *packet.Connack) {
					mu.Lock()
					present = append(present, ack.SessionPresent)
					mu.Unlock()
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			if _, err := sc.Subscribe(ctx, func(*fennec.Message) { got.Add(1) }, sub("resub/t", 1)); err != nil {
				t.Fatal(err)
			}
			// Killed at once: mosquitto's last snapshot (one per change here) holds the session
			// and not yet the subscription.
			b.Kill()
			if err := b.Restart(); err != nil {
				t.Fatal(err)
			}
			for {
				mu.Lock()
				n := len(present)
				mu.Unlock()
				if n >= 2 || ctx.Err() != nil {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond) // the SUBACK of a resubscription
			pc := connect(t, fennec.Config{Server: "mqtt://" + b.Addr, CleanStart: true})
			if err := pc.Publish(ctx, &fennec.Message{Topic: "resub/t", QoS: 1}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			mu.Lock()
			t.Logf("session present after the restart: %v; received %d", present[1:], got.Load())
			mu.Unlock()
			mu.Lock()
			kept := len(present) > 1 && present[1]
			mu.Unlock()
			if !kept {
				t.Skip("mosquitto reported the session lost this time: the case under test did not arise")
			}
			if tc.want == 0 && got.Load() > 0 && subscribes.Load() == 1 {
				// the client did not subscribe again (its one SUBSCRIBE was the first), yet received: mosquitto's snapshot held the
				// subscription too (a loaded machine delayed the kill past it)
				t.Skip("mosquitto's snapshot kept the subscription this time: the case under test did not arise")
			}
			if got.Load() != tc.want {
				t.Fatalf("received %d, want %d", got.Load(), tc.want)
			}
		})
	}
}
