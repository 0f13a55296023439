package diagnose

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/fennec-mqtt/fennec/pki"
)

// Diagnosis explains a failure in plain words: which step failed, why, with what evidence,
// and what to do.
type Diagnosis struct {
	Step string `json:"step"` // StepLocal, StepDNS, StepTCP, StepTLS, StepMQTT, StepRoundTrip
	// Kind is the stable identifier of the cause (docs/diagnosis.md), e.g. "unknown-authority".
	Kind  string `json:"cause"`
	Cause string `json:"explanation"`
	// Evidence are the observations the cause rests on (names, dates, codes, versions).
	Evidence []string `json:"evidence,omitempty"`
	// Inferred is true when the cause is deduced rather than observed; Candidates then lists
	// the likely causes, most likely first.
	Inferred   bool     `json:"inferred,omitempty"`
	Candidates []string `json:"candidates,omitempty"`
	Fix        string   `json:"fix"`
	Err        error    `json:"-"` // the error explained
}

func (d *Diagnosis) String() string {
	s := d.Step + ": " + d.Cause
	for _, e := range d.Evidence {
		s += "\nevidence: " + e
	}
	for i, c := range d.Candidates {
		s += fmt.Sprintf("\nlikely cause %d: %s", i+1, c)
	}
	return s + "\nfix: " + d.Fix
}

// Diagnosis kinds returned by ExplainHandshake.
const (
	DiagUnknownAuthority      = "unknown-authority"
	DiagHostname              = "hostname-mismatch"
	DiagExpired               = "certificate-validity"
	DiagBadServerCert         = "bad-server-certificate"
	DiagPin                   = "pin-mismatch"
	DiagVersion               = "protocol-version"
	DiagClientCertMissing     = "client-certificate-missing"
	DiagClientCertRejected    = "client-certificate-rejected"
	DiagClosedAfterHandshake  = "closed-after-handshake"
	DiagEOFDuringHandshake    = "eof-during-handshake"
	DiagNotTLS                = "not-tls"
	DiagHandshakeFailure      = "handshake-failure"
	DiagNoApplicationProtocol = "alpn"
	DiagUnrecognizedName      = "unrecognized-name"
)

// TLS alert numbers (RFC 8446 section 6) that ExplainHandshake distinguishes.
const (
	alertHandshakeFailure    = 40
	alertBadCertificate      = 42
	alertUnsupportedCert     = 43
	alertCertificateRevoked  = 44
	alertCertificateExpired  = 45
	alertCertificateUnknown  = 46
	alertUnknownCA           = 48
	alertAccessDenied        = 49
	alertDecryptError        = 51
	alertProtocolVersion     = 70
	alertInsufficientSec     = 71
	alertUnrecognizedName    = 112
	alertCertificateRequired = 116
	alertNoAppProtocol       = 120
)

// RemoteAlert returns the TLS alert the peer sent, when err (from crypto/tls) says one was
// received.
func RemoteAlert(err error) (uint8, bool) {
	var op *net.OpError
	for e := err; e != nil; {
		if errors.As(e, &op) && op.Op == "remote error" {
			v := reflect.ValueOf(op.Err)
			if v.IsValid() && v.Kind() == reflect.Uint8 && v.Type().PkgPath() == "crypto/tls" {
				return uint8(v.Uint()), true
			}
			e = op.Err
			continue
		}
		break
	}
	var ae tls.AlertError
	if errors.As(err, &ae) {
		return uint8(ae), true
	}
	return 0, false
}

// ExplainHandshake turns an error from a TLS handshake, or from the first read after it, into
// a Diagnosis. rec is the recorder given to ClientConfig (nil is allowed, with less detail). It
// returns nil when err is nil or not a TLS failure.
//
// Under TLS 1.3 the client finishes its side of the handshake before the server has checked the
// client certificate, so a rejected client certificate shows on the first read after the
// handshake, either as an alert (bad_certificate, unknown_ca, certificate_required) or as a
// reset, depending on timing. ExplainHandshake explains both; pass the error of that first read.
func ExplainHandshake(err error, rec *pki.HandshakeRecorder) *Diagnosis {
	if err == nil {
		return nil
	}
	info := rec.Info()
	d := &Diagnosis{Step: "tls", Err: err}

	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var pin *pki.PinError
	var rhe tls.RecordHeaderError
	switch {
	case errors.As(err, &pin):
		d.Kind, d.Cause = DiagPin, "the server's public key matches none of the pinned keys: "+trimPrefix(pin)
		d.Fix = "update the pin if the server's key was rotated on purpose (fennec cert inspect shows the SPKI SHA-256), otherwise you may be talking to the wrong server"
		return d
	case errors.As(err, &ua):
		return explainUnknownAuthority(d, ua, info)
	case errors.As(err, &he):
		return explainHostname(d, he)
	}
	if ci, ok := asCertInvalid(err); ok {
		return explainServerCertInvalid(d, ci, info)
	}
	if errors.As(err, &rhe) {
		d.Kind = DiagNotTLS
		d.Cause = "the server did not answer with TLS: the port speaks something else (plain MQTT on 1883, or HTTP)"
		d.Fix = "use the TLS port (8883 for MQTT over TLS) or connect without TLS (mqtt:// instead of mqtts://)"
		return d
	}
	if strings.Contains(err.Error(), "server selected unsupported protocol version") || strings.Contains(err.Error(), "protocol version not supported") && !isRemote(err) {
		d.Kind = DiagVersion
		d.Cause = "the server and this client have no TLS version in common" + allowedVersions(info) + ": " + err.Error()
		d.Fix = "allow the version the server speaks (--tls-version 1.2 or 1.3); fennec refuses TLS below 1.2"
		return d
	}

	if alert, ok := RemoteAlert(err); ok {
		return explainAlert(d, alert, info)
	}

	closed := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
	if !closed {
		if strings.Contains(err.Error(), "tls:") {
			d.Kind = DiagHandshakeFailure
			d.Cause = "the TLS handshake failed: " + err.Error()
			d.Fix = "run with SSLKEYLOGFILE set and capture the traffic, or compare with openssl s_client -connect HOST:PORT"
			return d
		}
		return nil
	}
	return explainClosed(d, info)
}

// explainUnknownAuthority explains a server certificate issued by a CA the client does not
// trust: which CA it needs, and whether a CA of the same name but another key is trusted.
func explainUnknownAuthority(d *Diagnosis, ua x509.UnknownAuthorityError, info pki.HandshakeInfo) *Diagnosis {
	trusted := "the system roots"
	if len(info.Trusted) > 0 {
		trusted = trustedList(info.Trusted)
	}
	d.Kind = DiagUnknownAuthority
	leaf := ua.Cert
	var cve *tls.CertificateVerificationError
	if errors.As(d.Err, &cve) && len(cve.UnverifiedCertificates) > 0 {
		leaf = cve.UnverifiedCertificates[0]
	}
	presented := ""
	if cve != nil {
		presented = describeChain(cve.UnverifiedCertificates)
	}
	if leaf == nil {
		d.Cause = "the server's certificate is issued by a CA you do not trust (" + trusted + ")"
		d.Fix = "pass the CA that issued the server's certificate (--cafile)"
		return d
	}
	d.Cause = fmt.Sprintf("the server's certificate %s is issued by %s, which is not among the CAs you trust (%s)", pki.NameString(leaf.Subject), pki.NameString(leaf.Issuer), trusted)
	if isSelfSigned(leaf) {
		d.Cause += "; the server's certificate is self-signed"
	}
	for _, t := range info.Trusted {
		if t == pki.NameString(leaf.Issuer) {
			d.Cause += "; a CA with that very name is trusted, but its key did not sign the server's certificate: it is a different CA with the same name (regenerated?)"
			break
		}
	}
	if presented != "" {
		d.Cause += "; the server presented: " + presented
	}
	d.Fix = fmt.Sprintf("pass the CA certificate whose subject is %s (--cafile)", pki.NameString(leaf.Issuer))
	if isAWSEndpoint(leaf) {
		d.Fix += "; for an AWS IoT ATS endpoint (-ats.iot.REGION.amazonaws.com) that is Amazon Root CA 1 (AmazonRootCA1.pem; Amazon Root CA 3 when the endpoint serves an ECC certificate); the legacy endpoint without -ats needs the VeriSign Class 3 G5 root"
	}
	return d
}

// explainHostname explains a server certificate that is not valid for the name connected to.
func explainHostname(d *Diagnosis, he x509.HostnameError) *Diagnosis {
	d.Kind = DiagHostname
	names := pki.CertNames(he.Certificate)
	if len(names) == 0 {
		d.Cause = fmt.Sprintf("the server's certificate %s has no subject alternative names, so it is valid for no host name (%q was expected); the common name is not used", pki.NameString(he.Certificate.Subject), he.Host)
	} else {
		d.Cause = fmt.Sprintf("the server's certificate is valid for %s, not for %q", strings.Join(names, ", "), he.Host)
	}
	d.Fix = "connect using one of those names, set the server name (SNI) to one of them, or reissue the server certificate with " + he.Host + " as a subject alternative name"
	return d
}

// explainServerCertInvalid explains a server certificate that is out of its dates (or a device
// clock that is unset) or not usable for a TLS server.
func explainServerCertInvalid(d *Diagnosis, ci x509.CertificateInvalidError, info pki.HandshakeInfo) *Diagnosis {
	if ci.Reason == x509.Expired {
		d.Kind = DiagExpired
		v := pki.CheckValidity(ci.Cert, info.Now)
		if v == nil {
			v = &pki.ValidityError{Subject: pki.NameString(ci.Cert.Subject), NotBefore: ci.Cert.NotBefore, NotAfter: ci.Cert.NotAfter, Now: info.Now, Expired: true}
		}
		ve := v.(*pki.ValidityError)
		d.Cause = "the server's " + trimPrefix(ve)
		if ve.ClockUnset {
			d.Cause = fmt.Sprintf("this device's clock says %s, before this program was even built, so the device clock is probably unset; the server's certificate is valid from %s to %s",
				ve.Now.UTC().Format(time.RFC3339), ve.NotBefore.UTC().Format(time.DateOnly), ve.NotAfter.UTC().Format(time.DateOnly))
		}
		d.Fix = ve.Hint()
		return d
	}
	d.Kind = DiagBadServerCert
	d.Cause = "the server's certificate " + pki.NameString(ci.Cert.Subject) + " is unusable: " + ci.Error()
	if ci.Reason == x509.IncompatibleUsage {
		d.Cause = fmt.Sprintf("the server's certificate %s is not allowed for TLS servers (extended key usage: %s)", pki.NameString(ci.Cert.Subject), strings.Join(extKeyUsageNames(ci.Cert), ", "))
	}
	d.Fix = "reissue the server certificate (fennec cert gen for a development broker)"
	return d
}

// explainClosed explains a server that closed or reset the connection without an alert: during
// the handshake, or after this client verified the server, where under TLS 1.3 a rejected or
// missing client certificate shows.
func explainClosed(d *Diagnosis, info pki.HandshakeInfo) *Diagnosis {
	how := "closed the connection"
	if errors.Is(d.Err, syscall.ECONNRESET) {
		how = "reset the connection"
	}
	if !info.Verified {
		d.Kind = DiagEOFDuringHandshake
		d.Cause = "the server " + how + " during the TLS handshake without sending an alert"
		if info.CertificateRequested {
			d.Cause += " (after asking for a client certificate" + acceptable(info) + ")"
		}
		d.Fix = "typical causes: the port does not speak TLS, the server requires SNI (set the server name; AWS IoT needs it), needs an ALPN protocol (x-amzn-mqtt-ca on port 443), or accepts none of the offered TLS versions and ciphers; try openssl s_client -connect HOST:PORT -servername HOST"
		return d
	}
	tls13 := info.Version == tls.VersionTLS13
	switch {
	case info.Complete || tls13:
		how += " right after the handshake"
	default:
		how += " after this client verified the server's certificate (during the handshake or right after it)"
	}
	d.Kind = DiagClosedAfterHandshake
	switch {
	case info.CertificateRequested && !info.CertificateSent:
		d.Kind = DiagClientCertMissing
		d.Cause = "the server " + how + ": it asked for a client certificate and none is configured" + acceptable(info)
		d.Fix = "configure the device certificate and key (--cert, --key)"
	case info.CertificateRequested && info.CertificateSent && (tls13 || !info.Complete):
		d.Kind = DiagClientCertRejected
		d.Cause = fmt.Sprintf("the server %s: it most likely rejected the client certificate %s (issued by %s)%s", how, info.ClientSubject, info.ClientIssuer, acceptable(info))
		if tls13 {
			d.Cause += ". Under TLS 1.3 the server checks the client certificate after the client has finished the handshake, so a rejection shows as a reset or an alert on the first read"
		}
		if info.CertificateUnsuitable {
			d.Cause += "; the server's request already said it does not accept this certificate"
		}
		d.Cause += clientValidity(info)
		d.Fix = "use a client certificate issued by a CA the server accepts (fennec cert verify --ca CA --cert CERT); for AWS IoT, register and activate the certificate, and attach a policy that allows iot:Connect for this client ID (a refused policy closes the connection the same way)"
	default:
		d.Cause = "the server " + how + ", without an alert"
		if info.CertificateSent {
			d.Cause += "; the TLS handshake had completed, so the server accepted the client certificate " + info.ClientSubject + " at the TLS level"
		}
		d.Fix = "the server refused at the next layer: check the broker's log; for AWS IoT, a certificate that is inactive or whose policy denies iot:Connect for this client ID is closed this way"
	}
	return d
}

// clientValidity says what is wrong with the client certificate's dates, or "".
func clientValidity(info pki.HandshakeInfo) string {
	if info.ClientLeaf == nil {
		return ""
	}
	if err := pki.CheckValidity(info.ClientLeaf, info.Now); err != nil {
		return "; by this device's clock, the client " + trimPrefix(err)
	}
	return ""
}

func isAWSEndpoint(c *x509.Certificate) bool {
	for _, n := range c.DNSNames {
		if strings.HasSuffix(n, ".amazonaws.com") {
			return true
		}
	}
	return false
}

func allowedVersions(info pki.HandshakeInfo) string {
	if info.MinVersion == 0 {
		return ""
	}
	max := info.MaxVersion
	if max == 0 {
		max = tls.VersionTLS13
	}
	if max == info.MinVersion {
		return " (this client allows " + tls.VersionName(max) + " only)"
	}
	return " (this client allows " + tls.VersionName(info.MinVersion) + " to " + tls.VersionName(max) + ")"
}

func isRemote(err error) bool {
	_, ok := RemoteAlert(err)
	return ok
}

func acceptable(info pki.HandshakeInfo) string {
	if len(info.AcceptableCAs) == 0 {
		return ""
	}
	return "; it accepts certificates issued by " + strings.Join(info.AcceptableCAs, "; ")
}

func explainAlert(d *Diagnosis, alert uint8, info pki.HandshakeInfo) *Diagnosis {
	name := strings.TrimPrefix(tls.AlertError(alert).Error(), "tls: ")
	// Under TLS 1.3 the client's handshake is complete once it has verified the server and
	// sent its Finished; the server judges the client certificate afterwards. Under TLS 1.2 the
	// server's verdict comes before the client's handshake completes.
	late := info.Verified && info.Version == tls.VersionTLS13
	when := "during the handshake"
	if late {
		when = "after the handshake"
	}
	switch alert {
	case alertProtocolVersion:
		d.Kind = DiagVersion
		d.Cause = "the server refused the TLS version (alert protocol_version): it does not speak any version this client allows" + allowedVersions(info)
		d.Fix = "allow the version the server speaks (--tls-version 1.2 or 1.3); fennec refuses TLS below 1.2"
		return d
	case alertNoAppProtocol:
		d.Kind = DiagNoApplicationProtocol
		d.Cause = "the server accepts none of the offered ALPN protocols (alert no_application_protocol)"
		d.Fix = "offer the protocol the server expects (AWS IoT on port 443: x-amzn-mqtt-ca), or none"
		return d
	case alertUnrecognizedName:
		d.Kind = DiagUnrecognizedName
		d.Cause = "the server does not know the server name (SNI) sent (alert unrecognized_name)"
		d.Fix = "set the server name to the host name in the broker's certificate"
		return d
	case alertCertificateRequired:
		if !info.CertificateSent {
			d.Kind = DiagClientCertMissing
			d.Cause = "the server requires a client certificate and none was sent (alert certificate_required " + when + ")" + acceptable(info)
			if info.ClientCert && info.CertificateRequested {
				d.Cause += "; one is configured but was not sent"
			}
			d.Fix = "configure the device certificate and key (--cert, --key)"
			return d
		}
	case alertHandshakeFailure:
		if info.CertificateRequested && !info.CertificateSent {
			d.Kind = DiagClientCertMissing
			d.Cause = "the server asked for a client certificate, none is configured, and it ended the handshake (alert handshake_failure)" + acceptable(info)
			d.Fix = "configure the device certificate and key (--cert, --key)"
			return d
		}
		d.Kind = DiagHandshakeFailure
		d.Cause = "the server ended the handshake (alert handshake_failure): no cipher suite, curve or signature algorithm in common, or it requires something this client did not offer"
		if info.CertificateSent {
			d.Cause += "; it may also have refused the client certificate " + info.ClientSubject
		}
		d.Fix = "compare with openssl s_client -connect HOST:PORT; check the broker's log"
		return d
	}
	switch alert {
	case alertBadCertificate, alertUnknownCA, alertCertificateRequired, alertUnsupportedCert, alertCertificateUnknown,
		alertCertificateExpired, alertCertificateRevoked, alertAccessDenied, alertDecryptError:
		if !info.CertificateSent && info.CertificateRequested {
			d.Kind = DiagClientCertMissing
			d.Cause = fmt.Sprintf("the server asked for a client certificate, none is configured, and it ended the connection with alert %s %s%s", name, when, acceptable(info))
			d.Fix = "configure the device certificate and key (--cert, --key)"
			return d
		}
		d.Kind = DiagClientCertRejected
		client := "the client certificate"
		if info.ClientSubject != "" {
			client = fmt.Sprintf("the client certificate %s (issued by %s)", info.ClientSubject, info.ClientIssuer)
		}
		d.Cause = fmt.Sprintf("the server rejected %s: alert %q %s%s", client, name, when, acceptable(info))
		switch alert {
		case alertUnknownCA:
			d.Cause += "; the server does not trust the CA that issued it"
		case alertCertificateExpired:
			d.Cause += "; the server says it has expired"
		case alertDecryptError:
			d.Cause += "; the signature made with the private key did not verify: the key does not match the certificate"
		}
		d.Cause += clientValidity(info)
		if late {
			d.Cause += ". Under TLS 1.3 the server checks the client certificate after the client has finished its handshake, so the rejection arrives on the first read (as this alert, or as a connection reset)"
		}
		d.Fix = "use a client certificate issued by a CA the server accepts (fennec cert verify --ca CA --cert CERT --key KEY); for AWS IoT, register and activate the certificate"
		return d
	}
	d.Kind = DiagHandshakeFailure
	d.Cause = fmt.Sprintf("the server ended the connection with alert %q %s", name, when)
	d.Fix = "check the broker's log for the reason"
	return d
}

func describeChain(chain []*x509.Certificate) string {
	parts := make([]string, 0, len(chain))
	for _, c := range chain {
		parts = append(parts, fmt.Sprintf("[%s issued by %s]", pki.NameString(c.Subject), pki.NameString(c.Issuer)))
	}
	return strings.Join(parts, " ")
}

// maxTrustedNamed is how many trusted CA names a diagnosis spells out; a CA bundle (the system
// roots, a corporate bundle) would otherwise bury the cause under a hundred names.
const maxTrustedNamed = 3

// trustedList names the first few trusted CAs and counts the rest.
func trustedList(names []string) string {
	if len(names) <= maxTrustedNamed {
		return strings.Join(names, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(names[:maxTrustedNamed], "; "), len(names)-maxTrustedNamed)
}

func trimPrefix(err error) string { return strings.TrimPrefix(err.Error(), "pki: ") }

// asCertInvalid returns x509's reason when err is a CertificateInvalidError.
func asCertInvalid(err error) (x509.CertificateInvalidError, bool) {
	var ci x509.CertificateInvalidError
	ok := errors.As(err, &ci)
	return ci, ok
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

func extKeyUsageNames(c *x509.Certificate) []string {
	var out []string
	for _, u := range c.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageAny:
			out = append(out, "any")
		case x509.ExtKeyUsageServerAuth:
			out = append(out, "TLS server")
		case x509.ExtKeyUsageClientAuth:
			out = append(out, "TLS client")
		default:
			out = append(out, fmt.Sprintf("usage %d", u))
		}
	}
	if len(out) == 0 {
		out = []string{"none"}
	}
	return out
}
