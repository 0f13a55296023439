package pki

import (
	"encoding/asn1"
	"fmt"
)

// Containers that hold certificates inside another structure: PKCS#7 certificate bundles
// (.p7b/.p7c, "BEGIN PKCS7", as Windows and some CAs export chains) are opened; PKCS#12 (.p12,
// .pfx) is recognised and named, since its keys are encrypted with legacy schemes.

var (
	oidPKCS7SignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidPKCS7Data       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
)

type pkcs7ContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,optional,tag:0"`
}

type pkcs7SignedData struct {
	Version          int
	DigestAlgorithms asn1.RawValue
	ContentInfo      asn1.RawValue
	Certificates     asn1.RawValue `asn1:"optional,tag:0"`
	CRLs             asn1.RawValue `asn1:"optional,tag:1"`
	SignerInfos      asn1.RawValue
}

// ContainerPKCS7 marks certificates taken out of a PKCS#7 bundle.
const ContainerPKCS7 Container = "PKCS#7"

// pkcs7Certificates returns the certificates of a PKCS#7 SignedData bundle; ok is false when
// der is not one.
func (p *parser) pkcs7Certificates(der []byte) (objs []Object, ok bool) {
	var ci pkcs7ContentInfo
	if rest, err := asn1.Unmarshal(der, &ci); err != nil || len(rest) != 0 || !ci.ContentType.Equal(oidPKCS7SignedData) {
		return nil, false
	}
	var sd pkcs7SignedData
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		return []Object{{Container: ContainerPKCS7, Err: &ParseError{Kind: KindCertificate, Err: fmt.Errorf("damaged PKCS#7 bundle: %v", err)}}}, true
	}
	rest := sd.Certificates.Bytes
	for len(rest) > 0 {
		n, err := derLength(rest)
		if err != nil {
			objs = append(objs, Object{Container: ContainerPKCS7, Kind: KindCertificate, Err: err})
			break
		}
		o := Object{Container: ContainerPKCS7}
		p.fillCert(&o, rest[:n])
		o.PEMType = "CERTIFICATE"
		objs = append(objs, o)
		rest = rest[n:]
	}
	if len(objs) == 0 {
		return []Object{{Container: ContainerPKCS7, Err: &NotDERError{Reason: "a PKCS#7 bundle without certificates"}}}, true
	}
	return objs, true
}

// PKCS12Error reports a PKCS#12 (.p12, .pfx) file, which this package does not open.
type PKCS12Error struct{ Name string }

func (e *PKCS12Error) Error() string {
	return fmt.Sprintf("pki: %s is a PKCS#12 (.p12/.pfx) bundle; fennec reads its certificates and key once extracted to PEM", e.Name)
}

// Hint implements Hinter.
func (e *PKCS12Error) Hint() string {
	return "extract them: openssl pkcs12 -in FILE.p12 -out bundle.pem -nodes (add -legacy for old RC2-encrypted files), then use bundle.pem"
}

func isPKCS12(der []byte) bool {
	var pfx struct {
		Version  int
		AuthSafe pkcs7ContentInfo
		MacData  asn1.RawValue `asn1:"optional"`
	}
	rest, err := asn1.Unmarshal(der, &pfx)
	return err == nil && len(rest) == 0 && pfx.Version == 3 && pfx.AuthSafe.ContentType.Equal(oidPKCS7Data)
}
