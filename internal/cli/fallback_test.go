package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/spf13/cobra"
)

// pub without -V against a broker without MQTT 5 connects with MQTT 3.1.1 and says so; with
// -V 5 it fails with the refusal and the fix, as before.
func TestPubVersionFallback(t *testing.T) {
	isolate(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 512)
				if n, err := c.Read(buf); err != nil || n < 9 || buf[8] == 5 {
					c.Write([]byte{0x20, 0x02, 0x00, 0x01}) // MQTT 3.1.1 CONNACK, return code 1
					return
				}
				c.Write([]byte{0x20, 0x02, 0x00, 0x00})
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if buf[0]>>4 == 14 || n == 0 { // DISCONNECT
						io.Copy(io.Discard, c)
						return
					}
				}
			}()
		}
	}()
	h, p := cmdutil.SplitHostPort(l.Addr().String())
	code, out, errout := run(t, "pub", "-h", h, "-p", fmt.Sprint(p), "-t", "a", "-m", "b")
	if code != 0 || !strings.Contains(errout, "connected with MQTT 3.1.1") {
		t.Fatalf("without -V: exit %d\n%s%s", code, out, errout)
	}
	code, out, errout = run(t, "pub", "-h", h, "-p", fmt.Sprint(p), "-t", "a", "-m", "b", "-V", "5")
	if code != cmdutil.ExitRefused || !strings.Contains(errout, "-V 311") {
		t.Fatalf("-V 5: exit %d\n%s%s", code, out, errout)
	}
}

// mosquitto_pub/sub flags fennec does not have get an answer saying what to use instead.
func TestMosquittoFlagsExplained(t *testing.T) {
	isolate(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sub", "-t", "x", "-A", "10.0.0.1"}, "bind to a local address"},
		{[]string{"pub", "-t", "x", "-m", "y", "--psk", "00"}, "use certificates"},
		{[]string{"pub", "-t", "x", "-m", "y", "--unix", "/run/m.sock"}, "mqtt://"},
		{[]string{"sub", "-t", "x", "--pretty"}, "--json"},
		{[]string{"sub", "-t", "x", "--tls-keylog", "k.log"}, "--keylog"},
		{[]string{"pub", "-t", "x", "-m", "y", "-M", "10"}, "Receive Maximum"},
		{[]string{"pub", "-t", "x", "-m", "y", "--keyform", "pem"}, "by their content"},
	} {
		code, out, errout := run(t, c.args...)
		if code != cmdutil.ExitUsage || !strings.Contains(errout, c.want) {
			t.Errorf("%q: exit %d, want usage naming %q\n%s%s", c.args, code, c.want, out, errout)
		}
	}
	if code, _, errout := run(t, "pub", "-t", "x", "-m", "y", "--bogus"); code != cmdutil.ExitUsage || !strings.Contains(errout, "unknown flag: --bogus") {
		t.Errorf("an unknown flag: exit %d %s", code, errout)
	}
}

// sub -W ends as mosquitto_sub -W does: exit status 27 when it runs out, with -C or without,
// checked beside mosquitto_sub on the same broker.
func TestSubTimeoutLikeMosquitto(t *testing.T) {
	isolate(t)
	mosquittotest.Require(t, "mosquitto_sub")
	bin, _ := exec.LookPath("mosquitto_sub")
	b := brokertest.Start(t, brokertest.Options{})
	h, p := cmdutil.SplitHostPort(b.TCPAddr)
	for _, extra := range [][]string{nil, {"-C", "2"}} {
		args := append([]string{"-h", h, "-p", fmt.Sprint(p), "-t", "quiet/topic", "-W", "1"}, extra...)
		cmd := exec.Command(bin, args...)
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 27 {
			t.Fatalf("mosquitto_sub %q: %v, want exit status 27", args, err)
		}
		if code, out, errout := run(t, append([]string{"sub"}, args...)...); code != 27 {
			t.Fatalf("fennec sub %q: exit %d, mosquitto_sub's is 27\n%s%s", args, code, out, errout)
		}
	}
}

// %j and %J print what mosquitto_sub prints (fields, order, payloadlen, properties; the time
// aside), both subscribed to one mosquitto, for a message with every user-visible property.
func TestFormatJSONLikeMosquitto(t *testing.T) {
	isolate(t)
	mosquittotest.Require(t, "mosquitto_sub", "mosquitto_pub")
	m := mosquittotest.Start(t, mosquittotest.Options{Quiet: true})
	h, p := cmdutil.SplitHostPort(m.Addr)
	tst := regexp.MustCompile(`"tst":"[^"]*",`)
	for _, f := range []string{"%j", "%J"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		mq := exec.CommandContext(ctx, "mosquitto_sub", "-h", h, "-p", fmt.Sprint(p), "-V", "5", "-t", "j/#", "-C", "1", "-F", f)
		var mout bytes.Buffer
		mq.Stdout = &mout
		if err := mq.Start(); err != nil {
			t.Fatal(err)
		}
		type result struct {
			code     int
			out, err string
		}
		fres := make(chan result, 1)
		go func() {
			c, o, e := run(t, "sub", "-h", h, "-p", fmt.Sprint(p), "-t", "j/#", "-C", "1", "-F", f)
			fres <- result{c, o, e}
		}()
		time.Sleep(500 * time.Millisecond) // both subscribed
		pub := exec.CommandContext(ctx, "mosquitto_pub", "-h", h, "-p", fmt.Sprint(p), "-V", "5", "-t", "j/x", "-m", `{"a":[1,2]}`, "-q", "1",
			"-D", "publish", "payload-format-indicator", "1", "-D", "publish", "message-expiry-interval", "100",
			"-D", "publish", "response-topic", "r/t", "-D", "publish", "correlation-data", "abc",
			"-D", "publish", "content-type", "application/json", "-D", "publish", "user-property", "k", "v")
		if out, err := pub.CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub: %v %s", err, out)
		}
		if err := mq.Wait(); err != nil {
			t.Fatalf("mosquitto_sub: %v", err)
		}
		r := <-fres
		cancel()
		want := tst.ReplaceAllString(strings.TrimSpace(mout.String()), "")
		got := tst.ReplaceAllString(strings.TrimSpace(r.out), "")
		if r.code != 0 || got != want {
			t.Fatalf("%s:\nfennec    %s\nmosquitto %s\n%s", f, got, want, r.err)
		}
		if !tst.MatchString(r.out) || !strings.Contains(r.out, "Z+0000\"") && !strings.Contains(r.out, "Z-") && !strings.Contains(r.out, "Z+") {
			t.Fatalf("%s: tst not in mosquitto's form: %s", f, r.out)
		}
	}
}

// Shell completion of flag values: profiles from the config file, QoS, versions, certificate
// files by extension.
func TestFlagValueCompletion(t *testing.T) {
	isolate(t)
	dir := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "fennec")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "config.toml"), []byte("[profiles.lab]\nbroker = \"mqtt://x\"\n[profiles.aws]\nqos = \"bad\"\n"), 0o600)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"pub", "--profile", ""}, "aws\nlab\n:4"},
		{[]string{"sub", "-q", ""}, "0\n1\n2\n:4"},
		{[]string{"pub", "-V", ""}, "5\n311\n:4"},
		{[]string{"doctor", "--tls-version", ""}, "tlsv1.3\ntlsv1.2\n:4"},
		{[]string{"sub", "--cert", ""}, "pem\ncrt\ncer\nder\nkey\nh\n:8"},
	} {
		code, out, _ := run(t, append([]string{"__complete"}, c.args...)...)
		if code != 0 || !strings.HasPrefix(out, c.want) {
			t.Errorf("completing %q: exit %d, %q, want %q", c.args, code, out, c.want)
		}
	}
}

// sub -C 1 -q 2 completes the QoS 2 handshake of its last message (PUBREC, PUBREL, PUBCOMP)
// before it disconnects, as mosquitto_sub does, even when the broker is slow to send PUBREL.
func TestSubCountCompletesQoS2(t *testing.T) {
	isolate(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	seen := make(chan []packet.Type, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(15 * time.Second))
		rd := packet.NewReader(nc, 0)
		write := func(p packet.Packet) {
			b, _ := p.Append(nil, packet.V5)
			nc.Write(b)
		}
		rd.ReadPacket(packet.V5) // CONNECT
		write(&packet.Connack{})
		var got []packet.Type
		for {
			p, err := rd.ReadPacket(packet.V5)
			if err != nil {
				seen <- got
				return
			}
			got = append(got, p.Type())
			switch p := p.(type) {
			case *packet.Subscribe:
				write(&packet.Suback{PacketID: p.PacketID, ReasonCodes: []packet.ReasonCode{2}})
				write(&packet.Publish{Topic: "q2/x", QoS: 2, PacketID: 7, Payload: []byte("once")})
			case *packet.Pubrec:
				time.Sleep(300 * time.Millisecond) // a slow PUBREL
				write(&packet.Pubrel{PacketID: p.PacketID})
			case *packet.Disconnect:
				seen <- got
				return
			}
		}
	}()
	h, p := cmdutil.SplitHostPort(l.Addr().String())
	code, out, errout := run(t, "sub", "-h", h, "-p", fmt.Sprint(p), "-V", "5", "-t", "q2/#", "-q", "2", "-C", "1")
	if code != 0 || strings.TrimSpace(out) != "once" {
		t.Fatalf("exit %d\n%s%s", code, out, errout)
	}
	got := <-seen
	if fmt.Sprint(got) != fmt.Sprint([]packet.Type{packet.SUBSCRIBE, packet.PUBREC, packet.PUBCOMP, packet.DISCONNECT}) {
		t.Fatalf("the client sent %v; want SUBSCRIBE, PUBREC, PUBCOMP, DISCONNECT", got)
	}
}

// As in mosquitto_pub: certificate flags turn TLS on, with port 8883 by default; -p 8883 alone
// does not (mosquitto too connects in plain MQTT then).
func TestCertificateFlagsTurnTLSOn(t *testing.T) {
	isolate(t)
	b := brokertest.Start(t, brokertest.Options{})
	for _, c := range []struct {
		args []string
		tls  bool
		port int
	}{
		{[]string{"-h", "127.0.0.1", "--cafile", b.CAFile}, true, 8883},
		{[]string{"-h", "127.0.0.1", "-p", "8883", "--cafile", b.CAFile}, true, 8883},
		{[]string{"-h", "127.0.0.1", "-p", "8883"}, false, 8883},
		{[]string{"-h", "127.0.0.1"}, false, 1883},
	} {
		cmd := &cobra.Command{Use: "pub"}
		f := &cmdutil.ConnFlags{}
		f.Register(cmd)
		if err := cmd.ParseFlags(c.args); err != nil {
			t.Fatal(err)
		}
		spec, err := f.BuildSpec(IO{Out: io.Discard, Err: io.Discard}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if (spec.TLS != nil) != c.tls || spec.Port != c.port || strings.HasPrefix(spec.Server, "mqtts://") != c.tls {
			t.Errorf("%q: server %s, TLS %v, want TLS %v on %d", c.args, spec.Server, spec.TLS != nil, c.tls, c.port)
		}
	}
}
