package certcheck

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/fennec-mqtt/fennec/pki"
)

// CertInfo is what `fennec cert inspect` shows about a certificate; it marshals to JSON.
type CertInfo struct {
	Subject            string    `json:"subject"`
	Issuer             string    `json:"issuer"`
	Serial             string    `json:"serial"`
	NotBefore          time.Time `json:"not_before"`
	NotAfter           time.Time `json:"not_after"`
	DNSNames           []string  `json:"dns_names,omitempty"`
	IPAddresses        []string  `json:"ip_addresses,omitempty"`
	EmailAddresses     []string  `json:"email_addresses,omitempty"`
	URIs               []string  `json:"uris,omitempty"`
	Key                string    `json:"key"`
	SignatureAlgorithm string    `json:"signature_algorithm"`
	IsCA               bool      `json:"is_ca"`
	MaxPathLen         *int      `json:"max_path_len,omitempty"`
	SelfSigned         bool      `json:"self_signed"`
	KeyUsage           []string  `json:"key_usage,omitempty"`
	ExtKeyUsage        []string  `json:"ext_key_usage,omitempty"`
	SHA256             string    `json:"sha256_fingerprint"`
	SHA1               string    `json:"sha1_fingerprint"`
	SPKIPin            string    `json:"spki_sha256"`
}

// Inspect describes cert.
func Inspect(cert *x509.Certificate) CertInfo {
	s256 := sha256.Sum256(cert.Raw)
	s1 := sha1.Sum(cert.Raw)
	ci := CertInfo{
		Subject:            pki.NameString(cert.Subject),
		Issuer:             pki.NameString(cert.Issuer),
		Serial:             colonHex(cert.SerialNumber.Bytes()),
		NotBefore:          cert.NotBefore.UTC(),
		NotAfter:           cert.NotAfter.UTC(),
		DNSNames:           cert.DNSNames,
		EmailAddresses:     cert.EmailAddresses,
		Key:                pki.KeyDescription(cert.PublicKey),
		SignatureAlgorithm: cert.SignatureAlgorithm.String(),
		IsCA:               cert.IsCA,
		SelfSigned:         isSelfSigned(cert),
		SHA256:             colonHex(s256[:]),
		SHA1:               colonHex(s1[:]),
		SPKIPin:            pki.SPKIPin(cert),
	}
	for _, ip := range cert.IPAddresses {
		ci.IPAddresses = append(ci.IPAddresses, ip.String())
	}
	for _, u := range cert.URIs {
		ci.URIs = append(ci.URIs, u.String())
	}
	if cert.IsCA && (cert.MaxPathLen > 0 || cert.MaxPathLenZero) {
		n := cert.MaxPathLen
		ci.MaxPathLen = &n
	}
	for _, u := range []struct {
		bit  x509.KeyUsage
		name string
	}{
		{x509.KeyUsageDigitalSignature, "digital signature"}, {x509.KeyUsageContentCommitment, "content commitment"},
		{x509.KeyUsageKeyEncipherment, "key encipherment"}, {x509.KeyUsageDataEncipherment, "data encipherment"},
		{x509.KeyUsageKeyAgreement, "key agreement"}, {x509.KeyUsageCertSign, "certificate sign"},
		{x509.KeyUsageCRLSign, "CRL sign"},
	} {
		if cert.KeyUsage&u.bit != 0 {
			ci.KeyUsage = append(ci.KeyUsage, u.name)
		}
	}
	for _, u := range cert.ExtKeyUsage {
		ci.ExtKeyUsage = append(ci.ExtKeyUsage, extKeyUsageName(u))
	}
	return ci
}

func colonHex(b []byte) string {
	h := strings.ToUpper(hex.EncodeToString(b))
	var sb strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteString(h[i : i+2])
	}
	return sb.String()
}

// ChainOrder checks that certs, in file order, form a chain leaf first: each certificate is
// issued by the next. It returns one note per problem (empty when the order is right or there
// is a single certificate).
func ChainOrder(certs []*x509.Certificate) []string {
	var notes []string
	for i := 0; i+1 < len(certs); i++ {
		c, next := certs[i], certs[i+1]
		if bytes.Equal(c.RawIssuer, next.RawSubject) && c.CheckSignatureFrom(next) == nil {
			continue
		}
		if bytes.Equal(next.RawIssuer, c.RawSubject) && next.CheckSignatureFrom(c) == nil {
			notes = append(notes, fmt.Sprintf("certificates %d and %d are in reverse order: a chain file lists the leaf first, then each issuer", i+1, i+2))
			continue
		}
		notes = append(notes, fmt.Sprintf("certificate %d (%s) is not issued by certificate %d (%s)", i+1, pki.NameString(c.Subject), i+2, pki.NameString(next.Subject)))
	}
	return notes
}

// EncodePEM returns the object as PEM, keeping its PEM type (a decrypted key is written
// unencrypted as "PRIVATE KEY").
