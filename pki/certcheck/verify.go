package certcheck

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/fennec-mqtt/fennec/pki"
)

type Usage int

const (
	UsageAny    Usage = iota // any extended key usage
	UsageServer              // TLS server authentication
	UsageClient              // TLS client authentication
)

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

func Verify(cert *x509.Certificate, opts VerifyOptions) error {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	if err := pki.CheckValidity(cert, now); err != nil {
		return err
	}
	for _, r := range opts.Roots {
		if err := pki.CheckValidity(r, now); err != nil && bytes.Equal(r.RawSubject, cert.RawIssuer) {
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
			return &HostnameError{Host: opts.Host, Subject: pki.NameString(cert.Subject), Names: pki.CertNames(cert)}
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

func issuedBy(cert *x509.Certificate, cas []*x509.Certificate) error {
	var subjects []string
	reason := "no CA has the subject the certificate names as its issuer"
	sameName := false
	for _, ca := range cas {
		subjects = append(subjects, pki.NameString(ca.Subject))
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
	return &pki.NotIssuedByError{Subject: pki.NameString(cert.Subject), Issuer: pki.NameString(cert.Issuer), CASubjects: subjects, Reason: reason, SameName: sameName}
}

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

func (e *HostnameError) Hint() string {
	if ip := net.ParseIP(e.Host); ip != nil {
		return "connect by one of the names above, or issue the certificate with this IP address as an IP SAN (fennec cert gen --ip " + e.Host + ")"
	}
	return "connect by one of the names above, set the TLS server name (SNI) to one of them, or issue the certificate for " + e.Host + " (fennec cert gen --host " + e.Host + ")"
}

type UsageError struct {
	Subject string
	Want    string // "TLS server" or "TLS client"
	Has     []string
}

func (e *UsageError) Error() string {
	return fmt.Sprintf("pki: certificate %s may not be used as a %s certificate (extended key usage: %s)", e.Subject, e.Want, strings.Join(e.Has, ", "))
}

func (e *UsageError) Hint() string {
	return "issue the certificate with the " + e.Want + " authentication extended key usage"
}

func explainVerifyError(err error, cert *x509.Certificate, roots []*x509.Certificate) error {
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		subjects := make([]string, 0, len(roots))
		for _, r := range roots {
			subjects = append(subjects, pki.NameString(r.Subject))
		}
		if len(roots) == 0 {
			subjects = []string{"the system roots"}
		}
		return &pki.NotIssuedByError{Subject: pki.NameString(cert.Subject), Issuer: pki.NameString(cert.Issuer), CASubjects: subjects, Reason: "no chain to the CA: " + ua.Error()}
	}
	if ci, ok := asCertInvalid(err); ok {
		switch ci.Reason {
		case x509.IncompatibleUsage:
			return &UsageError{Subject: pki.NameString(ci.Cert.Subject), Want: wantUsage(err), Has: extKeyUsageNames(ci.Cert)}
		case x509.Expired:
			if v := pki.CheckValidity(ci.Cert, time.Now()); v != nil {
				return fmt.Errorf("pki: a certificate in the chain is outside its validity: %w", v)
			}
		case x509.NotAuthorizedToSign:
			return fmt.Errorf("pki: %s signed a certificate but is not a CA (basic constraints CA:FALSE or no certSign key usage): %w", pki.NameString(ci.Cert.Subject), err)
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
