package capture_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"go.uber.org/goleak"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/capture"
	"github.com/fennec-mqtt/fennec/packet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// session runs CONNECT, SUBSCRIBE, PUBLISH (received back), DISCONNECT through a recorder.
func session(t *testing.T, rec *capture.Recorder, server string, tlsCfg *tls.Config, version packet.Version) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if tlsCfg != nil {
		tlsCfg = tlsCfg.Clone()
		tlsCfg.KeyLogWriter = rec.KeyLog()
	}
	c, err := fennec.Connect(ctx, fennec.Config{Server: server, ClientID: "cap1", TLSConfig: tlsCfg,
		Dial: rec.Dial(nil), Version: version, DisableReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	if _, err := c.Subscribe(ctx, func(m *fennec.Message) { got <- string(m.Payload) }, packet.Subscription{Filter: "cap/t", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, &fennec.Message{Topic: "cap/t", QoS: 1, Payload: []byte("hello capture")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal("message not received")
	}
	if err := c.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
}

// block is one pcapng block as read back, in file order.
type block struct {
	typ  uint32
	body []byte
}

// blocks walks a little-endian pcapng file block by block, independently of pcapgo.
func blocks(t *testing.T, b []byte) []block {
	t.Helper()
	var out []block
	for len(b) > 0 {
		if len(b) < 12 {
			t.Fatalf("truncated block: %d bytes left", len(b))
		}
		typ, n := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
		if n < 12 || int(n) > len(b) || n%4 != 0 || binary.LittleEndian.Uint32(b[n-4:]) != n {
			t.Fatalf("block %#x: bad length %d", typ, n)
		}
		out = append(out, block{typ, b[8 : n-4]})
		b = b[n:]
	}
	return out
}

type stream struct {
	out, in       bytes.Buffer // payload client→server and server→client
	syn, fin, rst int
	order         []string // in file order: ">" bytes written, "<" bytes read, and FINs
}

// readBack decodes every packet with pcapgo and gopacket, checks TCP checksums and sequence
// continuity, and reassembles the payload per client port.
func readBack(t *testing.T, file []byte, serverPort int) map[int]*stream {
	t.Helper()
	r, err := pcapgo.NewNgReader(bytes.NewReader(file), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeRaw {
		t.Fatalf("link type %v", r.LinkType())
	}
	streams := map[int]*stream{}
	next := map[string]uint32{}
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		p := gopacket.NewPacket(data, layers.LayerTypeIPv4, gopacket.Default)
		if p.Layer(layers.LayerTypeIPv4) == nil {
			p = gopacket.NewPacket(data, layers.LayerTypeIPv6, gopacket.Default)
		}
		tl, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tl == nil {
			t.Fatalf("packet without TCP: %v", p)
		}
		if err := tl.SetNetworkLayerForChecksum(p.NetworkLayer()); err != nil {
			t.Fatal(err)
		}
		// Summed with its own checksum field, a valid segment folds to 0.
		if c, err := tl.ComputeChecksum(); err != nil || c != 0 {
			t.Fatalf("TCP checksum %#x is wrong (residue %#x, %v)", tl.Checksum, c, err)
		}
		out := int(tl.DstPort) == serverPort
		port := int(tl.SrcPort)
		if !out {
			port = int(tl.DstPort)
		}
		s := streams[port]
		if s == nil {
			s = &stream{}
			streams[port] = s
		}
		key := strconv.Itoa(port) + strconv.FormatBool(out)
		if want, ok := next[key]; ok && !tl.RST && tl.Seq != want {
			t.Fatalf("port %d out=%v: seq %d, want %d", port, out, tl.Seq, want)
		}
		n := uint32(len(tl.Payload))
		if tl.SYN || tl.FIN {
			n++
		}
		next[key] = tl.Seq + n
		// A segment acknowledges only bytes the other side has sent earlier in the file.
		if other, ok := next[strconv.Itoa(port)+strconv.FormatBool(!out)]; ok && tl.ACK && int32(tl.Ack-other) > 0 {
			t.Fatalf("port %d out=%v: ack %d for bytes not yet in the file (next %d)", port, out, tl.Ack, other)
		}
		dir := map[bool]string{true: ">", false: "<"}[out]
		if len(tl.Payload) > 0 {
			s.order = append(s.order, dir+string(tl.Payload))
		}
		if tl.FIN {
			s.order = append(s.order, dir+"FIN")
		}
		switch {
		case tl.SYN:
			s.syn++
		case tl.FIN:
			s.fin++
		case tl.RST:
			s.rst++
		}
		if out {
			s.out.Write(tl.Payload)
		} else {
			s.in.Write(tl.Payload)
		}
	}
	return streams
}

func port(t *testing.T, addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A plain MQTT connection is written as it happens, and the streams read back are exactly the
// MQTT packets of the session.
func TestPlainMQTT(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	var buf bytes.Buffer
	rec, err := capture.New(&buf)
	if err != nil {
		t.Fatal(err)
	}
	session(t, rec, "mqtt://"+b.TCPAddr, nil, packet.V5)
	if st := rec.Stats(); st.Packets == 0 || st.Connections != 1 || st.Secrets != 0 {
		t.Fatalf("before Close: %+v (plain MQTT needs no holding back)", st)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	streams := readBack(t, buf.Bytes(), port(t, b.TCPAddr))
	if len(streams) != 1 {
		t.Fatalf("%d streams", len(streams))
	}
	for _, s := range streams {
		if s.syn != 2 || s.fin < 1 {
			t.Fatalf("syn %d fin %d", s.syn, s.fin)
		}
		var kinds []string
		for _, dir := range []*bytes.Buffer{&s.out, &s.in} {
			rd := packet.NewReader(bytes.NewReader(dir.Bytes()), 1<<20)
			for {
				p, err := rd.ReadPacket(packet.V5)
				if err != nil {
					break
				}
				kinds = append(kinds, p.Type().String())
				if pub, ok := p.(*packet.Publish); ok && (pub.Topic != "cap/t" || string(pub.Payload) != "hello capture") {
					t.Fatalf("PUBLISH %q %q", pub.Topic, pub.Payload)
				}
			}
		}
		if got := strings.Join(kinds, " "); got != "CONNECT SUBSCRIBE PUBLISH PUBACK DISCONNECT CONNACK SUBACK PUBACK PUBLISH" {
			t.Fatalf("packets: %s", got)
		}
	}
}

// TLS (1.2 and 1.3, mutual TLS): the secrets of the handshake come before any of its
// encrypted packets, match the ClientHello's random, and tshark, given the file alone,
// shows the MQTT packets decrypted.
func TestTLSDecryptsInWireshark(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			b := brokertest.Start(t, brokertest.Options{Clients: []string{"dev1"}, TLSMinVersion: tls.VersionTLS12})
			var buf bytes.Buffer
			rec, err := capture.New(&buf)
			if err != nil {
				t.Fatal(err)
			}
			cfg := b.ClientTLSConfig("dev1")
			cfg.MinVersion, cfg.MaxVersion = v, v
			session(t, rec, "mqtts://"+b.TLSAddr, cfg, packet.V311)
			if err := rec.Close(); err != nil {
				t.Fatal(err)
			}
			st := rec.Stats()
			if st.Undecryptable != 0 || st.Connections != 1 {
				t.Fatalf("stats %+v", st)
			}
			// Block order: every secret before the first packet with a payload.
			var secrets []string
			firstData := -1
			for i, bl := range blocks(t, buf.Bytes()) {
				switch bl.typ {
				case 0x0A:
					if binary.LittleEndian.Uint32(bl.body) != pcapgo.DSB_SECRETS_TYPE_TLS {
						t.Fatalf("secrets type %#x", binary.LittleEndian.Uint32(bl.body))
					}
					n := binary.LittleEndian.Uint32(bl.body[4:])
					if firstData >= 0 {
						t.Fatalf("secret in block %d after the first data packet in block %d", i, firstData)
					}
					secrets = append(secrets, string(bl.body[8:8+n]))
				case 6:
					if firstData < 0 && binary.LittleEndian.Uint32(bl.body[12:]) > 40 {
						firstData = i
					}
				}
			}
			want := map[uint16]int{tls.VersionTLS13: 4, tls.VersionTLS12: 1}[v]
			if len(secrets) != want {
				t.Fatalf("%d secrets, want %d: %q", len(secrets), want, secrets)
			}
			streams := readBack(t, buf.Bytes(), port(t, b.TLSAddr))
			for _, s := range streams {
				hello := s.out.Bytes()
				random := hex.EncodeToString(hello[11:43])
				for _, l := range secrets {
					if f := strings.Fields(l); len(f) != 3 || f[1] != random {
						t.Fatalf("secret %q is not for the ClientHello's random %s", l, random)
					}
				}
				if bytes.Contains(s.out.Bytes(), []byte("hello capture")) {
					t.Fatal("the payload is in clear text: not TLS?")
				}
			}
			tshark(t, buf.Bytes(), port(t, b.TLSAddr), true)
		})
	}
}

// tshark reads the capture with Wireshark's dissectors and checks the decrypted MQTT.
func tshark(t *testing.T, file []byte, serverPort int, overTLS bool) {
	t.Helper()
	bin, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed (make deps installs it): the Wireshark read-back is skipped")
	}
	p := filepath.Join(t.TempDir(), "c.pcapng")
	if err := os.WriteFile(p, file, 0o600); err != nil {
		t.Fatal(err)
	}
	ps := strconv.Itoa(serverPort)
	args := []string{"-n", "-r", p, "-d", "tcp.port==" + ps + ",mqtt"}
	if overTLS {
		args = []string{"-n", "-r", p, "-d", "tcp.port==" + ps + ",tls", "-d", "tls.port==" + ps + ",mqtt"}
	}
	args = append(args, "-Y", "mqtt", "-T", "fields", "-e", "mqtt.msgtype", "-e", "mqtt.topic", "-e", "mqtt.msg")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no user preferences, no key log file
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"1\t", "2\t", "8\t", "9\t", "3\tcap/t", "14"} {
		if !strings.Contains(text, want) {
			t.Fatalf("tshark output lacks %q:\n%s", want, text)
		}
	}
	if !strings.Contains(text, "hello capture") && !strings.Contains(text, hex.EncodeToString([]byte("hello capture"))) {
		t.Fatalf("tshark does not show the payload decrypted:\n%s", text)
	}
}

// slowConn returns from Write only after its hook has run, as a preempted writer does.
type slowConn struct {
	net.Conn
	hook func(written []byte)
}

func (s *slowConn) Write(b []byte) (int, error) {
	n, err := s.Conn.Write(b)
	if s.hook != nil {
		s.hook(b[:n])
	}
	return n, err
}

// The bytes a write hands the socket come before what is read while the write has not yet
// returned (the answer to them), and a write in progress when the connection is closed is
// recorded before the FIN. Recorded when Write returned, the answer came first and a DISCONNECT
// written just before Close was lost: Wireshark then did not show it.
func TestWriteOrder(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		sc, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer sc.Close()
		b := make([]byte, 4)
		if _, err := io.ReadFull(sc, b); err != nil {
			served <- err
			return
		}
		if _, err := sc.Write([]byte("pong")); err != nil {
			served <- err
			return
		}
		_, err = io.Copy(io.Discard, sc)
		served <- err
	}()
	raw, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	rec, err := capture.New(&buf)
	if err != nil {
		t.Fatal(err)
	}
	sc := &slowConn{Conn: raw}
	c := rec.Wrap(sc)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		b := make([]byte, 4)
		if _, err := io.ReadFull(c, b); err != nil {
			t.Error(err)
		}
	}()
	sc.hook = func([]byte) { <-answered } // "pong" is read and recorded before Write returns
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	sc.hook = func([]byte) { // the connection is closed before Write returns
		go func() { defer close(closed); c.Close() }()
		<-closed
	}
	if _, err := c.Write([]byte("bye!")); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	streams := readBack(t, buf.Bytes(), port(t, ln.Addr().String()))
	if len(streams) != 1 {
		t.Fatalf("%d streams", len(streams))
	}
	for _, s := range streams {
		if got, want := strings.Join(s.order, " "), ">ping <pong >bye! >FIN"; got != want {
			t.Fatalf("file order %q, want %q", got, want)
		}
	}
}

// Without secrets (no KeyLogWriter), a TLS connection is held back only up to MaxHeld, then
// written and counted as undecryptable; below the bound it waits for Close.
func TestHeldBackBounded(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Clients: []string{"dev1"}})
	for _, max := range []int{1, 1 << 20} {
		var buf bytes.Buffer
		rec, err := capture.New(&buf)
		if err != nil {
			t.Fatal(err)
		}
		rec.MaxHeld = max
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := fennec.Connect(ctx, fennec.Config{Server: "mqtts://" + b.TLSAddr, ClientID: "cap2",
			TLSConfig: b.ClientTLSConfig("dev1"), Dial: rec.Dial(nil), DisableReconnect: true})
		if err != nil {
			t.Fatal(err)
		}
		before := rec.Stats()
		c.Disconnect(ctx)
		cancel()
		if max == 1 && (before.Packets < 5 || before.Undecryptable != 1) {
			t.Fatalf("MaxHeld 1: %+v", before)
		}
		if max > 1 && before.Packets != 3 {
			t.Fatalf("MaxHeld 1 MiB: %d packets written before Close, want the 3 of the TCP open", before.Packets)
		}
		rec.Close()
		if len(readBack(t, buf.Bytes(), port(t, b.TLSAddr))) != 1 {
			t.Fatal("stream missing")
		}
	}
}

// A reset by the peer is recorded as the RST the client saw.
func TestResetRecorded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 10)
		c.Read(buf)
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}()
	var buf bytes.Buffer
	rec, _ := capture.New(&buf)
	nc, err := rec.Dial(nil)(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	nc.Write([]byte{0x10, 0})
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = nc.Read(make([]byte, 10))
	nc.Close()
	rec.Close()
	s := readBack(t, buf.Bytes(), port(t, ln.Addr().String()))
	for _, st := range s {
		if st.rst != 1 || st.out.Len() != 2 {
			t.Fatalf("read error %v; stream %+v", err, st)
		}
	}
}

// FuzzRecorder feeds arbitrary client writes, server bytes and key log text to a recorder:
// no panic, and the file stays a sequence of whole blocks.
func FuzzRecorder(f *testing.F) {
	f.Add([]byte{0x16, 3, 1, 0, 40, 1}, []byte("CLIENT_RANDOM 00 11\n"), []byte{0x20, 2, 0, 0})
	f.Add(bytes.Repeat([]byte{0x16}, 60), []byte("SERVER_TRAFFIC_SECRET_0 "+strings.Repeat("ab", 32)+" 00\nCLIENT_TRAFFIC_SECRET_0 "+strings.Repeat("ab", 32)+" 00\n"), []byte{})
	f.Fuzz(func(t *testing.T, out, keylog, in []byte) {
		var buf bytes.Buffer
		rec, err := capture.New(&buf)
		if err != nil {
			t.Fatal(err)
		}
		rec.MaxHeld = 1 << 16
		a, b := net.Pipe()
		c := rec.Wrap(a)
		go func() {
			io := make([]byte, len(out)+1)
			n := 0
			for n < len(out) {
				m, err := b.Read(io)
				if err != nil {
					break
				}
				n += m
			}
			b.Write(in)
			b.Close()
		}()
		if len(out) > 0 { // net.Pipe hands even an empty write to a reader
			c.Write(out)
		}
		rec.KeyLog().Write(keylog)
		rd := make([]byte, 512)
		for {
			if _, err := c.Read(rd); err != nil {
				break
			}
		}
		c.Close()
		if err := rec.Close(); err != nil {
			t.Fatal(err)
		}
		blocks(t, buf.Bytes())
	})
}
