package diagnose

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fennec-mqtt/fennec/awsiot"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/pki"
)

// Step names, in the order Run performs them.
const (
	StepLocal     = "local"
	StepDNS       = "dns"
	StepWebSocket = "websocket"
	StepTCP       = "tcp"
	StepTLS       = "tls"
	StepMQTT      = "mqtt"
	StepRoundTrip = "roundtrip"
)

// Target is what Run connects to, and with what.
type Target struct {
	Host string
	Port int
	// TLS turns TLS on; TLSOptions are the trust, the client certificate, versions, SNI and
	// ALPN (Recorder is set by Run).
	TLS        bool
	TLSOptions pki.ClientOptions
	// Version is the MQTT version (zero: 5).
	Version  packet.Version
	ClientID string // zero: fennec-doctor-RANDOM
	Username string
	Password []byte
	// HasPassword sends Password even when empty.
	HasPassword bool
	// AWS explains failures as AWS IoT Core causes them (an endpoint under amazonaws.com, or
	// the embedded broker in AWS emulation).
	AWS bool
	// NoPublish skips the round trip (subscribe and publish to Topic).
	NoPublish bool
	// Topic is the round trip's topic (zero: fennec/doctor/CLIENT_ID).
	Topic string
	// Timeout bounds each step (zero: 10 s).
	Timeout time.Duration
	// Material, when set, is an error found while preparing TLSOptions (an array of a C header
	// that firmware could not load); Run reports it as the local step's failure.
	// MaterialNote says where the material came from.
	Material     error
	MaterialNote string
	// Dial opens every TCP connection Run makes (the one checked and the probes); nil: a
	// net.Dialer. Each call is bounded by Timeout. capture.Recorder.Dial records them.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// WebSocket runs MQTT over WebSocket (ws://, or wss:// with TLS) on Path (zero: /mqtt),
	// after an upgrade step of its own.
	WebSocket bool
	Path      string
	// Resolver looks up Host (nil: net.DefaultResolver).
	Resolver *net.Resolver
	// Linger is how long the connection must stay up after the round trip (zero: not at all).
	// With a client ID a device also uses, the device's next reconnect takes the session over
	// and closes this connection: MQTT 5 says so (DISCONNECT 0x8E), MQTT 3.1.1 just closes, and
	// the doctor then tells a takeover from an ACL by trying another client ID.
	Linger time.Duration
}

// dial opens a TCP connection to addr within timeout.
func (t *Target) dial(ctx context.Context, timeout time.Duration, addr string) (net.Conn, error) {
	if t.Dial == nil {
		return (&net.Dialer{Timeout: timeout}).DialContext(ctx, "tcp", addr)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return t.Dial(ctx, "tcp", addr)
}

// StepResult is one line of a report.
type StepResult struct {
	Step    string   `json:"step"`
	OK      bool     `json:"ok"`
	Summary string   `json:"summary"`
	Facts   []string `json:"facts,omitempty"`
}

// Report is what Run found: the steps performed, and the diagnosis of the one that failed
// (nil when every step passed).
type Report struct {
	Target string       `json:"target"`
	AWS    bool         `json:"aws,omitempty"`
	Steps  []StepResult `json:"steps"`
	Failed *Diagnosis   `json:"diagnosis,omitempty"`
}

// OK reports whether every step passed.
func (r *Report) OK() bool { return r.Failed == nil }

type doctor struct {
	t      Target
	rep    *Report
	rec    *pki.HandshakeRecorder
	cfg    *tls.Config
	leaf   *x509.Certificate
	addrs  []string
	nc     net.Conn
	tc     *tls.Conn
	rd     *packet.Reader
	state  tls.ConnectionState
	hasTLS bool
	ws     net.Conn // the WebSocket connection MQTT runs on, when Target.WebSocket
	probe  bool     // a probe's doctor: it does not probe again
}

// Run connects to t one step at a time (local material, DNS, TCP, TLS, MQTT CONNECT, a round
// trip) and stops at the first step that fails, which the report's diagnosis explains. It
// only ever connects to t.
func Run(ctx context.Context, t Target) *Report {
	if t.Version == 0 {
		t.Version = packet.V5
	}
	if t.Timeout <= 0 {
		t.Timeout = 10 * time.Second
	}
	if t.ClientID == "" {
		b := make([]byte, 4)
		rand.Read(b)
		t.ClientID = "fennec-doctor-" + hex.EncodeToString(b)
	}
	if t.Topic == "" {
		t.Topic = "fennec/doctor/" + t.ClientID
	}
	if awsiot.IsEndpoint(t.Host) {
		t.AWS = true
	}
	if t.WebSocket && t.TLS && len(t.TLSOptions.NextProtos) == 0 {
		t.TLSOptions.NextProtos = []string{"http/1.1"} // the upgrade is HTTP/1.1
	}
	d := &doctor{t: t, rep: &Report{Target: net.JoinHostPort(t.Host, strconv.Itoa(t.Port)), AWS: t.AWS}}
	defer func() {
		if d.nc != nil {
			d.nc.Close()
		}
	}()
	for _, step := range []func(context.Context) *Diagnosis{d.local, d.dns, d.tcp, d.handshake, d.websocket, d.connect, d.roundTrip} {
		if diag := step(ctx); diag != nil {
			if ctx.Err() != nil && diag.Kind != CauseCanceled {
				diag = &Diagnosis{Step: diag.Step, Kind: CauseCanceled, Cause: "interrupted", Fix: "run again", Err: ctx.Err()}
			}
			d.rep.Failed = diag
			d.fail(diag)
			break
		}
	}
	return d.rep
}

func (d *doctor) pass(step, summary string, facts ...string) {
	d.rep.Steps = append(d.rep.Steps, StepResult{Step: step, OK: true, Summary: summary, Facts: facts})
}

func (d *doctor) passed(step string) bool {
	for _, s := range d.rep.Steps {
		if s.Step == step {
			return true
		}
	}
	return false
}

// fail records the failed step's line; a step already passed that the diagnosis blames (TLS,
// when the server rejects the client certificate on the first read) is marked failed.
func (d *doctor) fail(diag *Diagnosis) {
	for i := range d.rep.Steps {
		if d.rep.Steps[i].Step == diag.Step {
			d.rep.Steps[i].OK = false
			d.rep.Steps[i].Summary += "; then " + firstClause(diag.Cause)
			d.rep.Steps = d.rep.Steps[:i+1]
			return
		}
	}
	d.rep.Steps = append(d.rep.Steps, StepResult{Step: diag.Step, Summary: firstClause(diag.Cause)})
}

func firstClause(s string) string {
	if i := strings.Index(s, "; "); i > 0 {
		return s[:i]
	}
	return s
}

// local loads every file before a packet is sent.
func (d *doctor) local(ctx context.Context) *Diagnosis {
	if !d.t.TLS {
		d.pass(StepLocal, "no TLS material to check (plain MQTT)")
		return nil
	}
	if d.t.Material != nil {
		diag := explainMaterial(d.t.Material)
		if d.t.MaterialNote != "" {
			diag.Evidence = append(diag.Evidence, d.t.MaterialNote)
		}
		return diag
	}
	d.rec = &pki.HandshakeRecorder{}
	opts := d.t.TLSOptions
	opts.Recorder = d.rec
	if opts.ServerName == "" {
		opts.ServerName = d.t.Host
	}
	cfg, err := pki.ClientConfig(opts)
	if err != nil {
		return explainMaterial(err)
	}
	d.cfg = cfg
	var facts []string
	if d.t.MaterialNote != "" {
		facts = append(facts, d.t.MaterialNote)
	}
	if len(opts.CAs) == 0 {
		facts = append(facts, "trust: the system roots")
	} else if cfg.RootCAs != nil {
		facts = append(facts, "trust: "+trustedList(d.rec.Info().Trusted))
	}
	if info := d.rec.Info(); info.ClientLeaf != nil {
		leaf := info.ClientLeaf
		d.leaf = leaf
		now := info.Now
		if err := pki.CheckValidity(leaf, now); err != nil {
			var ve *pki.ValidityError
			kind := CauseClientCertValidity
			if errors.As(err, &ve) && ve.ClockUnset {
				kind = CauseClockImplausible
			}
			return &Diagnosis{Step: StepLocal, Kind: kind, Err: err,
				Cause:    "the client " + trimPrefix(err),
				Evidence: []string{fmt.Sprintf("this machine's clock: %s; the certificate is valid from %s to %s", now.UTC().Format(time.RFC3339), leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))},
				Fix:      pki.Hint(err)}
		}
		facts = append(facts, fmt.Sprintf("client certificate: %s, issued by %s, valid until %s; the key matches it", pki.NameString(leaf.Subject), pki.NameString(leaf.Issuer), leaf.NotAfter.UTC().Format(time.DateOnly)))
	} else {
		facts = append(facts, "no client certificate")
	}
	if opts.InsecureSkipVerify {
		facts = append(facts, "WARNING: the server's certificate is not verified (--insecure)")
	}
	d.pass(StepLocal, "TLS material loads", facts...)
	return nil
}

// explainMaterial explains a file that does not load.
func explainMaterial(err error) *Diagnosis {
	diag := &Diagnosis{Step: StepLocal, Kind: CauseTLSSetup, Err: err, Cause: trimPrefix(err), Fix: pki.Hint(err)}
	var km *pki.KeyMismatchError
	var ek *pki.EncryptedKeyError
	var wk *pki.WrongKindError
	var pa *pki.PEMInArrayError
	var nc *pki.NoCAError
	var pe *os.PathError
	switch {
	case errors.As(err, &ek):
		diag.Kind = CauseKeyEncrypted
		if errors.Is(err, pki.ErrNeedPassphrase) {
			diag.Fix = "give the passphrase (the CLI reads it from the FENNEC_KEY_PASSPHRASE environment variable; never put it on the command line), or write a decrypted copy once: openssl pkey -in KEY -out KEY.plain (keep it mode 0600)"
		}
	case errors.As(err, &km):
		diag.Kind = CauseKeyMismatch
	case errors.As(err, &pa):
		diag.Kind = CausePEMInArray
	case errors.As(err, &wk), errors.As(err, &nc):
		diag.Kind = CauseWrongKind
	case errors.As(err, &pe):
		diag.Kind = CauseFileUnreadable
		diag.Fix = "check the path and that this user may read the file"
	}
	if diag.Fix == "" {
		diag.Fix = "check the file with fennec cert inspect FILE"
	}
	return diag
}

func (d *doctor) dns(ctx context.Context) *Diagnosis {
	var facts []string
	if d.t.AWS && awsiot.IsLegacyEndpoint(d.t.Host) {
		facts = append(facts, "WARNING: "+d.t.Host+" is a legacy AWS IoT endpoint (VeriSign root); use the ATS endpoint (aws iot describe-endpoint --endpoint-type iot:Data-ATS), which Amazon Root CA 1 verifies")
	}
	if ip := net.ParseIP(d.t.Host); ip != nil {
		d.addrs = []string{ip.String()}
		d.pass(StepDNS, "an address, nothing to look up", facts...)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.t.Timeout)
	defer cancel()
	res := d.t.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	addrs, err := res.LookupHost(ctx, d.t.Host)
	if err != nil {
		diag := &Diagnosis{Step: StepDNS, Kind: CauseDNSFailure, Err: err, Cause: fmt.Sprintf("looking up %q failed: %v", d.t.Host, err),
			Fix: "check the host name and this machine's DNS (resolv.conf)"}
		var de *net.DNSError
		switch {
		case errors.As(err, &de) && de.IsNotFound:
			diag.Kind = CauseDNSNotFound
			diag.Cause = fmt.Sprintf("the name %q does not exist (the DNS server %s answered that it has no such name)", d.t.Host, orUnknown(de.Server))
			diag.Fix = "check the spelling of the host name"
		case errors.As(err, &de) && de.IsTimeout, errors.Is(err, context.DeadlineExceeded):
			diag.Cause = fmt.Sprintf("looking up %q: the DNS server %s did not answer within %s", d.t.Host, orUnknown(de.Server), d.t.Timeout)
			diag.Fix = "check this machine's DNS servers (resolv.conf) and that UDP/TCP port 53 is open to them"
		case errors.As(err, &de):
			diag.Cause = fmt.Sprintf("looking up %q: the DNS server %s failed (%s): the name may exist, this lookup did not work", d.t.Host, orUnknown(de.Server), de.Err)
			diag.Fix = "try again; check this machine's DNS servers (resolv.conf), or use an address with -h"
		}
		if d.t.AWS {
			diag.Fix += "; for AWS IoT Core use your account's endpoint: aws iot describe-endpoint --endpoint-type iot:Data-ATS"
		}
		return diag
	}
	d.addrs = addrs
	d.pass(StepDNS, d.t.Host+" is "+strings.Join(addrs, ", "), facts...)
	return nil
}

func (d *doctor) tcp(ctx context.Context) *Diagnosis {
	var last error
	for _, a := range d.addrs {
		addr := net.JoinHostPort(a, strconv.Itoa(d.t.Port))
		start := time.Now()
		nc, err := d.t.dial(ctx, d.t.Timeout, addr)
		if err == nil {
			d.nc = nc
			d.pass(StepTCP, fmt.Sprintf("connected to %s in %s", addr, time.Since(start).Round(10*time.Microsecond)))
			return nil
		}
		last = err
	}
	return d.tcpFailed(last)
}

// tcpFailed explains a failed TCP connect.
func (d *doctor) tcpFailed(last error) *Diagnosis {
	addr := net.JoinHostPort(d.t.Host, strconv.Itoa(d.t.Port))
	diag := &Diagnosis{Step: StepTCP, Kind: CauseTCPUnreachable, Err: last, Cause: fmt.Sprintf("cannot connect to %s: %v", addr, last), Fix: "check the address and this machine's network"}
	var ne net.Error
	switch {
	case errors.Is(last, syscall.ECONNREFUSED):
		diag.Kind = CauseTCPRefused
		diag.Cause = fmt.Sprintf("nothing listens on %s (connection refused): the host answered, the port is closed", addr)
		diag.Fix = "check that the broker runs and the port: MQTT 1883, MQTT over TLS 8883, AWS IoT 8883 or 443 (with ALPN x-amzn-mqtt-ca)"
	case errors.As(last, &ne) && ne.Timeout(), errors.Is(last, context.DeadlineExceeded):
		diag.Kind = CauseTCPTimeout
		diag.Cause = fmt.Sprintf("%s did not answer within %s: a firewall drops the packets, or the host is down", addr, d.t.Timeout)
		diag.Fix = "check firewalls on the way (outbound 8883 is often blocked; AWS IoT also serves MQTT on 443 with ALPN x-amzn-mqtt-ca)"
	case errors.Is(last, syscall.EHOSTUNREACH), errors.Is(last, syscall.ENETUNREACH):
		diag.Cause = fmt.Sprintf("no route to %s (%v)", addr, last)
	}
	return diag
}

func (d *doctor) handshake(ctx context.Context) *Diagnosis {
	if !d.t.TLS {
		d.rd = packet.NewReader(d.nc, 1<<20)
		return nil
	}
	cfg := d.cfg.Clone()
	d.rec.Reset()
	tickets := &ticketSignal{ClientSessionCache: cfg.ClientSessionCache, got: make(chan struct{})}
	if cfg.ClientSessionCache != nil {
		cfg.ClientSessionCache = tickets
	}
	d.tc = tls.Client(d.nc, cfg)
	d.nc.SetDeadline(time.Now().Add(d.t.Timeout))
	err := d.tc.HandshakeContext(ctx)
	if err != nil {
		diag := ExplainHandshake(err, d.rec)
		if diag == nil {
			diag = &Diagnosis{Step: StepTLS, Kind: DiagHandshakeFailure, Err: err, Cause: "the TLS handshake failed: " + err.Error(), Fix: "compare with openssl s_client -connect HOST:PORT -servername HOST"}
		}
		d.refineTLS(ctx, d.nc.RemoteAddr().String(), diag)
		return diag
	}
	d.rec.MarkComplete()
	d.hasTLS = true
	d.state = d.tc.ConnectionState()
	d.nc.SetDeadline(time.Time{})
	// Under TLS 1.3 the server judges the client certificate after the client's side of the
	// handshake: wait briefly for its verdict before sending anything, so that a rejection
	// arrives as its alert rather than as a reset that races the CONNECT.
	// The server's session ticket comes after its verdict, so it ends the wait early; a
	// server that sends no tickets costs the full wait.
	if d.state.Version == tls.VersionTLS13 && d.rec.Info().CertificateSent {
		until := time.Now().Add(lateVerdictWait)
		for time.Now().Before(until) {
			select {
			case <-tickets.got:
				until = time.Time{}
				continue
			default:
			}
			d.nc.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			var one [1]byte
			n, err := d.tc.Read(one[:])
			if n > 0 {
				d.nc.SetReadDeadline(time.Time{})
				return &Diagnosis{Step: StepMQTT, Kind: CauseNotMQTT, Cause: "the server sent data before CONNECT: this port does not speak MQTT", Fix: "check the port"}
			}
			var ne net.Error
			if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
				d.nc.SetReadDeadline(time.Time{})
				return d.lateTLS(err)
			}
		}
		d.nc.SetReadDeadline(time.Time{})
	}
	d.rd = packet.NewReader(d.tc, 1<<20)
	d.pass(StepTLS, fmt.Sprintf("%s, %s", tls.VersionName(d.state.Version), tls.CipherSuiteName(d.state.CipherSuite)), d.tlsFacts()...)
	return nil
}

func (d *doctor) tlsFacts() []string {
	info := d.rec.Info()
	var facts []string
	if d.state.NegotiatedProtocol != "" {
		facts = append(facts, "ALPN: "+d.state.NegotiatedProtocol)
	} else if len(d.cfg.NextProtos) > 0 {
		facts = append(facts, "ALPN: none agreed (offered "+strings.Join(d.cfg.NextProtos, ", ")+")")
	}
	facts = append(facts, "SNI: "+d.cfg.ServerName)
	for i, c := range d.state.PeerCertificates {
		what := "server certificate"
		if i > 0 {
			what = "chain"
		}
		facts = append(facts, fmt.Sprintf("%s: %s, issued by %s, valid until %s", what, pki.NameString(c.Subject), pki.NameString(c.Issuer), c.NotAfter.UTC().Format(time.DateOnly)))
	}
	switch {
	case info.CertificateRequested && info.CertificateSent:
		facts = append(facts, "the server asked for a client certificate"+acceptable(info)+"; sent "+info.ClientSubject)
	case info.CertificateRequested:
		facts = append(facts, "the server asked for a client certificate"+acceptable(info)+"; none configured, none sent")
	default:
		facts = append(facts, "the server did not ask for a client certificate")
	}
	return facts
}

// lateTLS explains an error on the first read after a TLS 1.3 handshake, where the server's
// rejection of the client certificate shows.
func (d *doctor) lateTLS(err error) *Diagnosis {
	if d.cfg != nil && !d.passed(StepTLS) {
		d.pass(StepTLS, fmt.Sprintf("%s, %s", tls.VersionName(d.state.Version), tls.CipherSuiteName(d.state.CipherSuite)), d.tlsFacts()...)
	}
	diag := ExplainHandshake(err, d.rec)
	if diag == nil {
		diag = &Diagnosis{Step: StepTLS, Kind: DiagClosedAfterHandshake, Err: err, Cause: "the server ended the connection right after the handshake: " + err.Error(), Fix: "check the broker's log"}
	}
	diag.Step = StepTLS
	if info := d.rec.Info(); diag.Kind == DiagClientCertRejected && info.ClientIssuer != "" {
		for _, ca := range info.AcceptableCAs {
			if ca == info.ClientIssuer {
				diag.Evidence = append(diag.Evidence, "the server accepts a CA named "+ca+", the name of this certificate's issuer, yet rejects the certificate: it is a different CA with the same name (regenerated?), or the server finds the certificate expired or revoked")
				break
			}
		}
	}
	return diag
}

// refineTLS adds what probes on fresh connections to the same port learn: whether it speaks
// plain MQTT, and which TLS versions it accepts.
func (d *doctor) refineTLS(ctx context.Context, addr string, diag *Diagnosis) {
	switch diag.Kind {
	case DiagEOFDuringHandshake, DiagNotTLS:
		if probePlainMQTT(ctx, &d.t, addr, d.t.Timeout) {
			diag.Kind = CausePlainMQTTPort
			diag.Cause = fmt.Sprintf("%s speaks plain MQTT, not TLS: this client sent a TLS ClientHello and the broker closed the connection", addr)
			diag.Evidence = append(diag.Evidence, "a plain MQTT CONNECT sent to the same port got a CONNACK")
			diag.Fix = "use the broker's TLS port (usually 8883), or connect without TLS (mqtt:// instead of mqtts://) if plain MQTT is what you want"
			return
		}
		if diag.Kind == DiagEOFDuringHandshake {
			var cands []string
			if d.t.AWS {
				if d.cfg.ServerName == "" || net.ParseIP(d.cfg.ServerName) != nil {
					cands = append(cands, "no server name (SNI) was sent: AWS IoT Core requires the endpoint name as SNI")
				}
				if d.t.Port == 443 && len(d.cfg.NextProtos) == 0 {
					cands = append(cands, "port 443 without ALPN: AWS IoT Core needs ALPN x-amzn-mqtt-ca for MQTT on 443")
				}
			}
			cands = append(cands, "the server accepts none of the offered TLS versions or cipher suites", "the port serves another protocol")
			diag.Inferred = true
			diag.Candidates = cands
		}
	case DiagVersion:
		accepted := probeVersions(ctx, &d.t, addr, d.cfg.ServerName, d.t.Timeout)
		offered := allowedVersions(d.rec.Info())
		if offered == "" {
			offered = " (this client allows TLS 1.2 to TLS 1.3)"
		}
		if len(accepted) > 0 {
			diag.Evidence = append(diag.Evidence, "probed with one version at a time, the server accepts "+strings.Join(accepted, ", "), "this client offered"+strings.TrimSuffix(strings.TrimPrefix(offered, " (this client allows"), ")"))
			diag.Cause += "; the server accepts " + strings.Join(accepted, ", ")
			if !containsAny(accepted, "TLS 1.2", "TLS 1.3") {
				diag.Fix = "the server speaks only versions below TLS 1.2, which are insecure and which fennec refuses: upgrade the broker's TLS configuration"
			} else {
				diag.Fix = "allow " + accepted[len(accepted)-1] + " (--tls-version " + strings.TrimPrefix(strings.ToLower(accepted[len(accepted)-1]), "tls ") + ")"
			}
		}
	}
}

func containsAny(list []string, want ...string) bool {
	for _, l := range list {
		for _, w := range want {
			if l == w {
				return true
			}
		}
	}
	return false
}

// probePlainMQTT reports whether addr answers an MQTT 3.1.1 CONNECT with a CONNACK.
func probePlainMQTT(ctx context.Context, t *Target, addr string, timeout time.Duration) bool {
	nc, err := t.dial(ctx, timeout, addr)
	if err != nil {
		return false
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(timeout))
	b, _ := (&packet.Connect{Version: packet.V311, CleanStart: true, KeepAlive: 10, ClientID: "fennec-probe"}).Append(nil, packet.V311)
	if _, err := nc.Write(b); err != nil {
		return false
	}
	var resp [2]byte
	_, err = io.ReadFull(nc, resp[:])
	return err == nil && resp[0] == 0x20 && resp[1] == 2
}

// probeTLS reports whether addr answers a ClientHello with a ServerHello.
func probeTLS(ctx context.Context, t *Target, addr, name string, timeout time.Duration) bool {
	nc, err := t.dial(ctx, timeout, addr)
	if err != nil {
		return false
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(timeout))
	var hello bool
	tc := tls.Client(nc, &tls.Config{ServerName: name, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12,
		// The probe only learns whether the port speaks TLS; it verifies nothing and sends
		// no data.
		VerifyConnection: func(tls.ConnectionState) error { hello = true; return errors.New("probe done") }})
	err = tc.HandshakeContext(ctx)
	var rhe tls.RecordHeaderError
	return hello || err == nil || (err != nil && !errors.As(err, &rhe) && isRemote(err))
}

// probeVersions returns the TLS versions addr accepts, learnt with one handshake per version.
// The probes verify nothing and send no data.
func probeVersions(ctx context.Context, t *Target, addr, name string, timeout time.Duration) []string {
	var out []string
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13} {
		nc, err := t.dial(ctx, timeout, addr)
		if err != nil {
			return out
		}
		nc.SetDeadline(time.Now().Add(timeout))
		ok := false
		tc := tls.Client(nc, &tls.Config{ServerName: name, InsecureSkipVerify: true, MinVersion: v, MaxVersion: v,
			VerifyConnection: func(cs tls.ConnectionState) error { ok = cs.Version == v; return errors.New("probe done") }})
		tc.HandshakeContext(ctx)
		nc.Close()
		if ok {
			out = append(out, tls.VersionName(v))
		}
	}
	return out
}

// lateVerdictWait bounds how long Run waits after a TLS 1.3 handshake with a client
// certificate for the server's verdict on it, before it sends CONNECT.
const lateVerdictWait = 500 * time.Millisecond

// ticketSignal tells when the server sent a session ticket: under TLS 1.3 a server sends its
// tickets once it has accepted the client's Finished and certificate.
type ticketSignal struct {
	tls.ClientSessionCache
	got  chan struct{}
	once sync.Once
}

func (t *ticketSignal) Put(key string, cs *tls.ClientSessionState) {
	t.ClientSessionCache.Put(key, cs)
	t.once.Do(func() { close(t.got) })
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}
