package certcheck

import (
	"bytes"
	"crypto/x509"
	"errors"
	"strings"
)

func trimPrefix(err error) string {
	return strings.TrimPrefix(strings.TrimPrefix(err.Error(), "pki: "), "certcheck: ")
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// asCertInvalid returns x509's reason when err is a CertificateInvalidError.
func asCertInvalid(err error) (x509.CertificateInvalidError, bool) {
	var ci x509.CertificateInvalidError
	ok := errors.As(err, &ci)
	return ci, ok
}
