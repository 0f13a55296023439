package cli

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
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
	h, p := splitHostPort(l.Addr().String())
	code, out, errout := run(t, "pub", "-h", h, "-p", fmt.Sprint(p), "-t", "a", "-m", "b")
	if code != 0 || !strings.Contains(errout, "connected with MQTT 3.1.1") {
		t.Fatalf("without -V: exit %d\n%s%s", code, out, errout)
	}
	code, out, errout = run(t, "pub", "-h", h, "-p", fmt.Sprint(p), "-t", "a", "-m", "b", "-V", "5")
	if code != ExitRefused || !strings.Contains(errout, "-V 311") {
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
		if code != ExitUsage || !strings.Contains(errout, c.want) {
			t.Errorf("%q: exit %d, want usage naming %q\n%s%s", c.args, code, c.want, out, errout)
		}
	}
	if code, _, errout := run(t, "pub", "-t", "x", "-m", "y", "--bogus"); code != ExitUsage || !strings.Contains(errout, "unknown flag: --bogus") {
		t.Errorf("an unknown flag: exit %d %s", code, errout)
	}
}
