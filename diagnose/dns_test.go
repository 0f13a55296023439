package diagnose_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/diagnose"
)

// dnsServer is a scripted DNS server on 127.0.0.1 (UDP): for each name, an address, NXDOMAIN,
// SERVFAIL, or silence. Nothing leaves the machine.
type dnsServer struct {
	pc      net.PacketConn
	answers map[string]string // name (with the final dot) → "127.0.0.1", "nxdomain", "servfail", "silent"
}

func startDNS(t *testing.T, answers map[string]string) *dnsServer {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{pc: pc, answers: answers}
	t.Cleanup(func() { pc.Close() })
	go s.serve()
	return s
}

func (s *dnsServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		ans := s.answers[q.Name.String()]
		if ans == "silent" {
			continue
		}
		rh := dnsmessage.Header{ID: h.ID, Response: true, RecursionAvailable: true}
		switch ans {
		case "", "nxdomain":
			rh.RCode = dnsmessage.RCodeNameError
		case "servfail":
			rh.RCode = dnsmessage.RCodeServerFailure
		}
		b := dnsmessage.NewBuilder(nil, rh)
		b.EnableCompression()
		b.StartQuestions()
		b.Question(q)
		b.StartAnswers()
		if ip := net.ParseIP(ans); ip != nil && q.Type == dnsmessage.TypeA {
			var a [4]byte
			copy(a[:], ip.To4())
			b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: a})
		}
		out, err := b.Finish()
		if err == nil {
			s.pc.WriteTo(out, from)
		}
	}
}

// resolver sends every lookup to the scripted server.
func (s *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", s.pc.LocalAddr().String())
	}}
}

// The DNS step, made for real against a DNS server that answers no such name, fails, stays
// silent, or gives the address of the embedded broker (then every step passes, with the name's
// address in the facts; an AWS legacy endpoint is warned about).
func TestDoctorDNS(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	dns := startDNS(t, map[string]string{
		"broker.test.": "127.0.0.1",
		"nosuch.test.": "nxdomain",
		"broken.test.": "servfail",
		"silent.test.": "silent",
		"a1b2c3d4e5f6g7.iot.eu-west-1.amazonaws.com.": "127.0.0.1",
	})
	_, port := hostPort(t, b.TCPAddr)
	target := func(host string) diagnose.Target {
		return diagnose.Target{Host: host, Port: port, Timeout: 2 * time.Second, Resolver: dns.resolver()}
	}
	// absolute names (final dot): the machine's search domains are not tried
	expectCause(t, target("nosuch.test."), runs, diagnose.StepDNS, diagnose.CauseDNSNotFound, `"nosuch.test." does not exist`, "spelling")
	expectCause(t, target("broken.test."), runs, diagnose.StepDNS, diagnose.CauseDNSFailure, `"broken.test."`, "failed", "resolv.conf")
	silent := target("silent.test.")
	silent.Timeout = 200 * time.Millisecond
	expectCause(t, silent, runs, diagnose.StepDNS, diagnose.CauseDNSFailure, "did not answer", "port 53")

	r := diagnose.Run(context.Background(), target("broker.test."))
	if !r.OK() || !strings.Contains(strings.Join(r.Steps[1].Facts, " ")+r.Steps[1].Summary, "127.0.0.1") {
		t.Fatalf("a name that resolves: %+v %v", r.Steps, r.Failed)
	}
	aws := target("a1b2c3d4e5f6g7.iot.eu-west-1.amazonaws.com.")
	aws.AWS, aws.NoPublish = true, true
	r = diagnose.Run(context.Background(), aws)
	if len(r.Steps) < 2 || !strings.Contains(strings.Join(r.Steps[1].Facts, " "), "legacy AWS IoT endpoint") {
		t.Fatalf("legacy endpoint: %+v", r.Steps)
	}
}
