package cmdutil

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Tracer prints the --debug trace: every MQTT packet both ways and the TLS facts, one line per
// event, to stderr so that stdout keeps only the messages.
type Tracer struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	Short bool // the demo's short form: packet lines only, no TLS chain
}

func NewTracer(w io.Writer) *Tracer { return &Tracer{w: w, start: time.Now()} }

func (t *Tracer) stamp() string {
	return fmt.Sprintf("%8.3fms", float64(time.Since(t.start).Microseconds())/1000)
}

// packet prints one packet line: direction arrow, type and fields.
func (t *Tracer) packet(outbound bool, desc string) {
	if t == nil {
		return
	}
	arrow := "<-"
	if outbound {
		arrow = "->"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "%s %s %s\n", t.stamp(), arrow, desc)
}

// note prints a line that is not a packet: dialing, TLS, reconnects.
func (t *Tracer) note(format string, args ...any) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "%s    %s\n", t.stamp(), fmt.Sprintf(format, args...))
}

// tls prints the facts of a finished handshake.
func (t *Tracer) tls(cs *tls.ConnectionState, facts *TLSFacts) {
	if t == nil || cs == nil {
		return
	}
	alpn := cs.NegotiatedProtocol
	if alpn == "" {
		alpn = "none"
	}
	resumed := ""
	if cs.DidResume {
		resumed = ", session resumed"
	}
	sni := ""
	if cs.ServerName != "" {
		sni = fmt.Sprintf(", server name %q", cs.ServerName)
	}
	t.note("TLS %s, cipher %s, ALPN %s%s%s", TLSVersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite), alpn, sni, resumed)
	requested, sent, cas := facts.Snapshot()
	switch {
	case requested && sent:
		t.note("TLS client certificate: requested by the server, sent")
	case requested:
		t.note("TLS client certificate: requested by the server, NONE sent (no --cert given)")
	default:
		t.note("TLS client certificate: not requested by the server")
	}
	if requested && len(cas) > 0 && !t.Short {
		t.note("TLS server accepts client certificates from: %s", strings.Join(cas, "; "))
	}
	if facts != nil && facts.insecure {
		t.note("TLS server certificate NOT verified (--insecure)")
	}
	if t.Short {
		if len(cs.PeerCertificates) > 0 {
			t.note("TLS server certificate %q issued by %q", cs.PeerCertificates[0].Subject.CommonName, cs.PeerCertificates[0].Issuer.CommonName)
		}
		return
	}
	for i, c := range cs.PeerCertificates {
		fp := sha256.Sum256(c.Raw)
		names := append(append([]string{}, c.DNSNames...), ipStrings(c)...)
		t.note("TLS peer chain [%d] subject %q issuer %q valid %s .. %s names [%s] sha256 %s", i, c.Subject.String(), c.Issuer.String(),
			c.NotBefore.UTC().Format("2006-01-02"), c.NotAfter.UTC().Format("2006-01-02"), strings.Join(names, " "), hex.EncodeToString(fp[:8]))
	}
	if len(cs.VerifiedChains) > 0 {
		ch := cs.VerifiedChains[0]
		t.note("TLS verified: chain of %d ends at %q", len(ch), ch[len(ch)-1].Subject.String())
	}
}

func TLSVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "1.3"
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS11:
		return "1.1"
	case tls.VersionTLS10:
		return "1.0"
	}
	return fmt.Sprintf("0x%04x", v)
}

// payloadPreview shows a payload in a trace line: text when printable, else hex, cut at 64 bytes.
func payloadPreview(p []byte) string {
	const max = 64
	cut := p
	if len(cut) > max {
		cut = cut[:max]
	}
	printable := true
	for _, c := range cut {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
			printable = false
			break
		}
	}
	var s string
	if printable {
		s = fmt.Sprintf("%q", cut)
	} else {
		s = "0x" + hex.EncodeToString(cut)
	}
	if len(p) > max {
		s += "…"
	}
	return s
}
