package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// MinPlausibleTime is the earliest time a correctly set clock can show: any clock before it is
// certainly unset. BuildTime is at least this.
var MinPlausibleTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

var buildTime = sync.OnceValue(func() time.Time {
	t := MinPlausibleTime
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				if vt, err := time.Parse(time.RFC3339, s.Value); err == nil && vt.After(t) {
					t = vt
				}
			}
		}
	}
	return t
})

// BuildTime returns the time of the commit this program was built from (debug.BuildInfo
// vcs.time), or MinPlausibleTime when that is unknown or earlier. A clock before BuildTime is
// wrong: the program cannot run before it was written.
func BuildTime() time.Time { return buildTime() }

// ClockPlausible reports whether now can be a correctly set clock.
func ClockPlausible(now time.Time) bool { return !now.Before(BuildTime()) }

// NameString formats a distinguished name compactly, e.g. "CN=broker, O=Fennec development".
func NameString(n pkix.Name) string {
	s := n.String()
	if s == "" {
		return "(empty name)"
	}
	return s
}

// CheckValidity returns a *ValidityError when now is outside the certificate's validity period.
func CheckValidity(cert *x509.Certificate, now time.Time) error {
	if now.IsZero() {
		now = time.Now()
	}
	if now.After(cert.NotAfter) || now.Before(cert.NotBefore) {
		return &ValidityError{
			Subject: NameString(cert.Subject), NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, Now: now,
			Expired: now.After(cert.NotAfter), ClockUnset: !ClockPlausible(now),
		}
	}
	return nil
}

// KeyMatches reports whether key is the private key of pub.
func KeyMatches(pub crypto.PublicKey, key crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := key.Public().(equaler)
	return ok && e.Equal(pub)
}

// CheckKeyPair returns a *KeyMismatchError when key does not belong to cert. The names are used
// in the message.
func CheckKeyPair(cert *x509.Certificate, key crypto.Signer, certName, keyName string) error {
	if KeyMatches(cert.PublicKey, key) {
		return nil
	}
	return &KeyMismatchError{CertName: certName, KeyName: keyName, Subject: NameString(cert.Subject),
		CertKey: KeyDescription(cert.PublicKey), Key: KeyDescription(key.Public())}
}

// Usage is what a certificate is being verified for.
type Usage int

const (
	UsageAny    Usage = iota // any extended key usage
	UsageServer              // TLS server authentication
	UsageClient              // TLS client authentication
)

// VerifyOptions configures Verify.
type VerifyOptions struct {
	// Roots are the trusted CA certificates; empty means the system roots.
	Roots []*x509.Certificate
	// Intermediates may help build the chain (a chain file's extra certificates).
	Intermediates []*x509.Certificate
	// Host, when set, must be among the certificate's DNS or IP SANs.
	Host  string
	Usage Usage
	// Now is the verification time; zero means time.Now().
	Now time.Time
}

// Verify checks that cert chains to one of opts.Roots at opts.Now, that it may be used as
// opts.Usage and, when opts.Host is set, that it is valid for that host. Its errors are the
// typed errors of this package (*ValidityError, *NotIssuedByError, *HostnameError, ...), each
// naming the cause.
func Verify(cert *x509.Certificate, opts VerifyOptions) error {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	if err := CheckValidity(cert, now); err != nil {
		return err
	}
	for _, r := range opts.Roots {
		if err := CheckValidity(r, now); err != nil && bytes.Equal(r.RawSubject, cert.RawIssuer) {
			return fmt.Errorf("pki: the CA certificate is not valid: %w", err)
		}
	}
	if len(opts.Roots) > 0 && !issuerAmong(cert, opts.Intermediates) {
		if err := issuedBy(cert, opts.Roots); err != nil {
			return err
		}
	}
	vo := x509.VerifyOptions{CurrentTime: now, Intermediates: x509.NewCertPool()}
	if len(opts.Roots) > 0 {
		vo.Roots = x509.NewCertPool()
		for _, r := range opts.Roots {
			vo.Roots.AddCert(r)
		}
	}
	for _, c := range opts.Intermediates {
		vo.Intermediates.AddCert(c)
	}
	switch opts.Usage {
	case UsageAny:
		vo.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
	case UsageServer:
		vo.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	case UsageClient:
		vo.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	if _, err := cert.Verify(vo); err != nil {
		return explainVerifyError(err, cert, opts.Roots)
	}
	if opts.Host != "" {
		if err := cert.VerifyHostname(opts.Host); err != nil {
			return &HostnameError{Host: opts.Host, Subject: NameString(cert.Subject), Names: CertNames(cert)}
		}
	}
	return nil
}

func issuerAmong(cert *x509.Certificate, certs []*x509.Certificate) bool {
	for _, c := range certs {
		if bytes.Equal(c.RawSubject, cert.RawIssuer) && !bytes.Equal(c.Raw, cert.Raw) {
			return true
		}
	}
	return false
}

// issuedBy checks that one of cas signed cert, directly.
func issuedBy(cert *x509.Certificate, cas []*x509.Certificate) error {
	var subjects []string
	reason := "no CA has the subject the certificate names as its issuer"
	sameName := false
	for _, ca := range cas {
		subjects = append(subjects, NameString(ca.Subject))
		if !bytes.Equal(ca.RawSubject, cert.RawIssuer) {
			continue
		}
		if err := cert.CheckSignatureFrom(ca); err != nil {
			if !ca.IsCA || !ca.BasicConstraintsValid {
				reason = "the certificate with the issuer's name is not a CA (basic constraints CA:FALSE)"
				continue
			}
			reason = "a CA with that name is given, but its key did not sign this certificate: it is a different CA with the same name (regenerated?)"
			sameName = true
			continue
		}
		return nil
	}
	return &NotIssuedByError{Subject: NameString(cert.Subject), Issuer: NameString(cert.Issuer), CASubjects: subjects, Reason: reason, SameName: sameName}
}

// HostnameError reports a certificate that is not valid for the host name connected to.
type HostnameError struct {
	Host    string
	Subject string
	Names   []string // the DNS and IP SANs in the certificate
}

func (e *HostnameError) Error() string {
	if len(e.Names) == 0 {
		return fmt.Sprintf("pki: certificate %s is not valid for %q: it has no subject alternative names (the common name is not used for host names)", e.Subject, e.Host)
	}
	return fmt.Sprintf("pki: certificate %s is not valid for %q: it is valid for %s", e.Subject, e.Host, strings.Join(e.Names, ", "))
}

// Hint implements Hinter.
func (e *HostnameError) Hint() string {
	if ip := net.ParseIP(e.Host); ip != nil {
		return "connect by one of the names above, or issue the certificate with this IP address as an IP SAN (fennec cert gen --ip " + e.Host + ")"
	}
	return "connect by one of the names above, set the TLS server name (SNI) to one of them, or issue the certificate for " + e.Host + " (fennec cert gen --host " + e.Host + ")"
}

// UsageError reports a certificate without the extended key usage the role needs.
type UsageError struct {
	Subject string
	Want    string // "TLS server" or "TLS client"
	Has     []string
}

func (e *UsageError) Error() string {
	return fmt.Sprintf("pki: certificate %s may not be used as a %s certificate (extended key usage: %s)", e.Subject, e.Want, strings.Join(e.Has, ", "))
}

// Hint implements Hinter.
func (e *UsageError) Hint() string {
	return "issue the certificate with the " + e.Want + " authentication extended key usage"
}

// CertNames returns the DNS and IP subject alternative names of cert.
func CertNames(cert *x509.Certificate) []string {
	names := append([]string(nil), cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}

func explainVerifyError(err error, cert *x509.Certificate, roots []*x509.Certificate) error {
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		subjects := make([]string, 0, len(roots))
		for _, r := range roots {
			subjects = append(subjects, NameString(r.Subject))
		}
		if len(roots) == 0 {
			subjects = []string{"the system roots"}
		}
		return &NotIssuedByError{Subject: NameString(cert.Subject), Issuer: NameString(cert.Issuer), CASubjects: subjects, Reason: "no chain to the CA: " + ua.Error()}
	}
	if ci, ok := asCertInvalid(err); ok {
		switch ci.Reason {
		case x509.IncompatibleUsage:
			return &UsageError{Subject: NameString(ci.Cert.Subject), Want: wantUsage(err), Has: extKeyUsageNames(ci.Cert)}
		case x509.Expired:
			if v := CheckValidity(ci.Cert, time.Now()); v != nil {
				return fmt.Errorf("pki: a certificate in the chain is outside its validity: %w", v)
			}
		case x509.NotAuthorizedToSign:
			return fmt.Errorf("pki: %s signed a certificate but is not a CA (basic constraints CA:FALSE or no certSign key usage): %w", NameString(ci.Cert.Subject), err)
		}
	}
	return fmt.Errorf("pki: %w", err)
}

func wantUsage(err error) string {
	if strings.Contains(err.Error(), "client") {
		return "TLS client"
	}
	return "TLS server"
}

func extKeyUsageNames(c *x509.Certificate) []string {
	var out []string
	for _, u := range c.ExtKeyUsage {
		out = append(out, extKeyUsageName(u))
	}
	if len(out) == 0 {
		out = []string{"none"}
	}
	return out
}

func extKeyUsageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageAny:
		return "any"
	case x509.ExtKeyUsageServerAuth:
		return "TLS server"
	case x509.ExtKeyUsageClientAuth:
		return "TLS client"
	case x509.ExtKeyUsageCodeSigning:
		return "code signing"
	case x509.ExtKeyUsageEmailProtection:
		return "email"
	case x509.ExtKeyUsageTimeStamping:
		return "time stamping"
	case x509.ExtKeyUsageOCSPSigning:
		return "OCSP signing"
	}
	return fmt.Sprintf("usage(%d)", int(u))
}

// CACertificates returns the CA certificates among objs. When there is none it returns a
// *NoCAError naming what the file holds instead; a certificate that is not a CA but is
// self-signed is accepted (some servers use one directly as their trust anchor).
func CACertificates(objs []Object, name string) ([]*x509.Certificate, error) {
	var cas []*x509.Certificate
	var found []string
	var firstErr error
	for _, o := range objs {
		switch {
		case o.Cert != nil && o.Err == nil && (o.Cert.IsCA || isSelfSigned(o.Cert)):
			cas = append(cas, o.Cert)
		case o.Err != nil:
			if firstErr == nil {
				firstErr = o.Err
			}
			found = append(found, o.Name+": "+trimPrefix(o.Err))
		default:
			found = append(found, o.Describe()+describeNotCA(o.Cert))
		}
	}
	if len(cas) > 0 {
		return cas, nil
	}
	if len(objs) == 1 && firstErr != nil {
		return nil, firstErr
	}
	return nil, &NoCAError{Name: name, Found: found}
}

func describeNotCA(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	return " issued by " + NameString(c.Issuer) + ", not a CA"
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}
