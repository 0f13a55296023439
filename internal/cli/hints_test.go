package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

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
