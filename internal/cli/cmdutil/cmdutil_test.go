package cmdutil

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

func TestJoinPropertyArgs(t *testing.T) {
	in := []string{"pub", "-D", "connect", "user-property", "k", "v", "-t", "x", "-D", "publish", "content-type", "text/plain", "-m", "hi"}
	got := JoinPropertyArgs(in)
	want := []string{"pub", "-D", "connect\x1fuser-property\x1fk\x1fv", "-t", "x", "-D", "publish\x1fcontent-type\x1ftext/plain", "-m", "hi"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestParseProps(t *testing.T) {
	ps, err := parseProps([]string{
		"connect\x1fsession-expiry-interval\x1f60",
		"publish\x1fuser-property\x1fa\x1fb",
		"publish\x1fuser-property\x1fa\x1fc",
		"publish\x1fcontent-type\x1ftext/plain",
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := ps.u32("connect", "session-expiry-interval"); v == nil || *v != 60 {
		t.Fatalf("session expiry = %v", v)
	}
	mp := ps.MessageProps("publish")
	if mp.ContentType != "text/plain" || len(mp.User) != 2 || mp.User[1] != [2]string{"a", "c"} {
		t.Fatalf("publish props = %+v", mp)
	}
	for _, bad := range []string{
		"connect\x1fcontent-type\x1fx",              // not a CONNECT property
		"puback\x1freason-string\x1fx",              // unknown command
		"subscribe\x1fsubscription-identifier\x1f1", // not supported yet: an error, not ignored
		"publish\x1fmessage-expiry-interval\x1fx",   // not a number
		"connect\x1freceive-maximum\x1f0",           // zero not allowed
		"connect\x1freceive-maximum\x1f70000",       // too large
		"publish\x1fuser-property\x1fonly",          // missing value
	} {
		if _, err := parseProps([]string{bad}); err == nil || ExitCode(err) != ExitUsage {
			t.Errorf("%q: err = %v, want a usage error", bad, err)
		}
	}
}

func TestFormatMessage(t *testing.T) {
	exp := uint32(30)
	m := &Message{Topic: "a/b", Payload: []byte("hi"), QoS: 1, Retain: true, PacketID: 7,
		Time: time.Date(2026, 11, 25, 9, 8, 7, 123456789, time.UTC), Props: msgProps{ContentType: "text/plain", MessageExpiry: &exp, User: [][2]string{{"k", "v"}}}}
	for format, want := range map[string]string{
		"%t %p":                "a/b hi",
		"%q %r %m %l":          "1 1 7 2",
		"%x %X":                "6869 6869",
		"[%5t][%-5t][%.1t]":    "[  a/b][a/b  ][a]",
		"%05l":                 "00002",
		"%C %E %P":             "text/plain 30 k:v",
		"@Y-@m-@d @H:@M:@S @N": "2026-11-25 09:08:07 123456789",
		`a\tb\\c%%`:            "a\tb\\c%",
		"%U":                   "1795597687.123456789",
		"%j":                   `{"tst":"2026-11-25T09:08:07.123456Z+0000","topic":"a/b","qos":1,"retain":1,"payloadlen":2,"properties":{"content-type":"text/plain","user-properties":{"k":"v"},"message-expiry-interval":30},"payload":"hi"}`,
	} {
		got, err := FormatMessage(format, m)
		if err != nil || got != want {
			t.Errorf("%q: got %q, %v; want %q", format, got, err, want)
		}
	}
	if _, err := FormatMessage("%J", m); err == nil {
		t.Error("%J with a non-JSON payload: no error")
	}
}

// TestHeadline: a connection that fails before TLS is summed up in the system's words.
func TestHeadline(t *testing.T) {
	refused := &fennec.ConnectError{Addr: "127.0.0.1:1", Phase: fennec.PhaseTCP, Err: &net.OpError{Op: "dial", Net: "tcp",
		Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}}
	dns := &fennec.ConnectError{Addr: "nosuch.example:1883", Phase: fennec.PhaseDNS, Err: &net.OpError{Op: "dial", Net: "tcp",
		Err: &net.DNSError{Err: "no such host", Name: "nosuch.example", IsNotFound: true}}}
	for err, want := range map[error]string{
		refused:                             "cannot connect to 127.0.0.1:1: connection refused",
		dns:                                 `cannot resolve "nosuch.example": no such host`,
		fmt.Errorf("fennec: x: %w", io.EOF): "x: EOF",
	} {
		if got := headline(err); got != want {
			t.Errorf("headline(%v) = %q, want %q", err, got, want)
		}
	}
}

func TestParseBrokerURL(t *testing.T) {
	for _, tc := range []struct {
		in                       string
		scheme, host, topic, usr string
		port                     int
	}{
		{"mqtts://dev1@example.com:8883/things/dev1/#", "mqtts", "example.com", "things/dev1/#", "dev1", 8883},
		{"mqtt://localhost/a/b", "mqtt", "localhost", "a/b", "", 1883},
		{"mqtts://[::1]/x/+/y", "mqtts", "::1", "x/+/y", "", 8883},
		{"mqtt://h/a/#", "mqtt", "h", "a/#", "", 1883},
		{"wss://h/mqtt", "wss", "h", "", "", 443},
	} {
		got, err := parseBrokerURL(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if got.scheme != tc.scheme || got.host != tc.host || got.topic != tc.topic || got.user != tc.usr || got.defaultPort() != tc.port {
			t.Errorf("%s: got %+v port %d", tc.in, got, got.defaultPort())
		}
	}
	for _, bad := range []string{"localhost:1883", "http://x/", "mqtt://:1883/t", "mqtt://h:99999/t"} {
		if _, err := parseBrokerURL(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// TestHints: the typed errors of the client become the exit code and hint lines a user needs.
func TestHints(t *testing.T) {
	aws := &ConnSpec{Host: "a1b2c3-ats.iot.us-east-2.amazonaws.com", Port: 8883, ClientID: "dev1", Server: "mqtts://a1b2c3-ats.iot.us-east-2.amazonaws.com:8883"}
	local := &ConnSpec{Host: "127.0.0.1", Port: 1883, Server: "mqtt://127.0.0.1:1883"}
	for _, tc := range []struct {
		name string
		err  error
		spec *ConnSpec
		code int
		want []string
	}{
		{"AWS closes after CONNECT", &fennec.ConnectError{Addr: "x:8883", Phase: fennec.PhaseMQTT, Err: fmt.Errorf("no CONNACK: %w", io.EOF)}, aws, ExitRefused,
			[]string{"step: MQTT — CONNECT", "without a CONNACK", "iot:Connect", "client/dev1", "fix: "}},
		{"bad password 3.1.1", &fennec.ReasonError{Packet: packet.CONNACK, Code: 4, Version: packet.V311}, local, ExitRefused,
			[]string{"step: MQTT CONNACK", "bad user name or password", "FENNEC_PASSWORD"}},
		{"not authorized 5", &fennec.ReasonError{Packet: packet.CONNACK, Code: 0x87, Version: packet.V5, Reason: "no"}, local, ExitRefused,
			[]string{"not authorized", "broker says: no"}},
		{"wrong protocol version", &fennec.ReasonError{Packet: packet.CONNACK, Code: 0x84, Version: packet.V5}, local, ExitRefused,
			[]string{"-V 311"}},
		{"session taken over", &fennec.ReasonError{Packet: packet.DISCONNECT, Code: 0x8E, Version: packet.V5}, local, ExitRefused,
			[]string{"same client ID"}},
		{"CONNACK timeout", &fennec.ConnectError{Addr: "x", Phase: fennec.PhaseMQTT, Err: context.DeadlineExceeded}, local, ExitTimeout,
			[]string{"waiting for CONNACK"}},
		{"keepalive", fmt.Errorf("x: %w", fennec.ErrKeepAliveTimeout), local, ExitTimeout, []string{"stopped answering"}},
		{"AWS 3.1.1 drops an unauthorized publish", fmt.Errorf("x: %w", fennec.ErrConnectionLost), aws, ExitNetwork, []string{"iot:Publish"}},
		{"cancelled", context.Canceled, local, ExitInterrupted, nil},
		{"QoS 2 on AWS", fmt.Errorf("%w: QoS 2 (its Maximum QoS is 1)", fennec.ErrNotSupported), aws, ExitRefused,
			[]string{"refused before sending", "AWS IoT Core supports QoS 0 and 1 only", "-q 1"}},
		{"no retained messages", fmt.Errorf("%w: retained messages (Retain Available 0)", fennec.ErrNotSupported), local, ExitRefused,
			[]string{"retained", "without -r"}},
		// a DNS failure as the client reports it (no test resolves names on the network)
		{"DNS", &fennec.ConnectError{Addr: "nosuch.example:1883", Phase: fennec.PhaseDNS, Err: &net.OpError{Op: "dial", Net: "tcp",
			Err: &net.DNSError{Err: "no such host", Name: "nosuch.example", IsNotFound: true}}}, local, ExitNetwork,
			[]string{"step: DNS", `"nosuch.example"`, "the name does not exist", "fix: check the host name"}},
		{"DNS AWS", &net.DNSError{Err: "no such host", Name: "x-ats.iot.us-east-2.amazonaws.com", IsNotFound: true}, aws, ExitNetwork,
			[]string{"describe-endpoint"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Explain(tc.err, tc.spec, "test")
			if c := ExitCode(err); c != tc.code {
				t.Fatalf("exit %d, want %d (%v)", c, tc.code, err)
			}
			h := strings.Join(HintLines(err), "\n")
			for _, w := range tc.want {
				if !strings.Contains(h, w) {
					t.Errorf("hints lack %q:\n%s", w, h)
				}
			}
		})
	}
	if h := subscribeRefusedHint(aws, "things/dev1/#"); !strings.Contains(h, "topicfilter/things/dev1/#") {
		t.Errorf("AWS subscribe hint: %s", h)
	}
}
