package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"runtime/debug"
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
// VerifyOptions configures Verify.
// Verify checks that cert chains to one of opts.Roots at opts.Now, that it may be used as
// opts.Usage and, when opts.Host is set, that it is valid for that host. Its errors are the
// typed errors of this package (*ValidityError, *NotIssuedByError, *HostnameError, ...), each
// naming the cause.
// issuedBy checks that one of cas signed cert, directly.
// HostnameError reports a certificate that is not valid for the host name connected to.
// Hint implements Hinter.
// UsageError reports a certificate without the extended key usage the role needs.
// Hint implements Hinter.
// CertNames returns the DNS and IP subject alternative names of cert.
func CertNames(cert *x509.Certificate) []string {
	names := append([]string(nil), cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	return names
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
