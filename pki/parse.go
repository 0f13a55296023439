package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Kind is what an object found in a file is.
type Kind int

const (
	KindUnknown     Kind = iota // not recognised, or damaged beyond recognition
	KindCertificate             // an X.509 certificate
	KindPrivateKey              // a private key (PKCS#1, PKCS#8, SEC1 or encrypted PKCS#8)
	KindPublicKey               // a bare public key (PKIX SubjectPublicKeyInfo or PKCS#1)
	KindCSR                     // a certificate signing request
)

func (k Kind) String() string {
	switch k {
	case KindCertificate:
		return "certificate"
	case KindPrivateKey:
		return "private key"
	case KindPublicKey:
		return "public key"
	case KindCSR:
		return "certificate request"
	}
	return "unknown data"
}

func (k Kind) article() string {
	if k == KindUnknown {
		return "unrecognised data"
	}
	return "a " + k.String()
}

// MarshalText implements encoding.TextMarshaler.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Kind) UnmarshalText(b []byte) error {
	for _, c := range []Kind{KindUnknown, KindCertificate, KindPrivateKey, KindPublicKey, KindCSR} {
		if c.String() == string(b) {
			*k = c
			return nil
		}
	}
	return fmt.Errorf("pki: unknown kind %q", b)
}

// Container is how an object was stored.
type Container string

const (
	ContainerPEM     Container = "PEM"
	ContainerDER     Container = "DER"
	ContainerBase64  Container = "base64"        // DER as base64 without PEM armour
	ContainerCArray  Container = "C array"       // unsigned char x[] = {0x30, ...}
	ContainerCString Container = "C string"      // PEM text in a C string literal
	ContainerGoSlice Container = "Go byte slice" // []byte{0x30, ...} as written by convert --to go
)

// Object is one thing found by Parse: a certificate, a key, or something that failed to parse
// together with the exact reason.
type Object struct {
	// Name identifies the object for people: the C array name, or the file name with the
	// position ("client.pem#2") when a file holds several objects.
	Name string
	Kind Kind
	// Container is how it was stored; Encoding names the inner format: "X.509", "PKCS#8",
	// "encrypted PKCS#8", "PKCS#1", "SEC1", "PKIX".
	Container Container
	Encoding  string
	// PEMType is the PEM block type the object has or would have ("CERTIFICATE", "EC PRIVATE KEY").
	PEMType string
	// DER is the binary encoding (for an encrypted key: the decrypted PKCS#8 when it could be
	// decrypted, else the encrypted structure).
	DER []byte

	Cert      *x509.Certificate // when Kind is KindCertificate and it parsed
	Key       crypto.Signer     // when Kind is KindPrivateKey and it parsed (and decrypted)
	PublicKey crypto.PublicKey  // the public key of a certificate, key or CSR
	CSR       *x509.CertificateRequest

	// Err is why the object is unusable (nil when it parsed). Problems that do not stop the
	// object from being used, such as a wrong sizeof_ constant, are in Warnings.
	Err      error
	Warnings []error
}

// OK reports whether the object parsed.
func (o *Object) OK() bool { return o.Err == nil && o.Kind != KindUnknown }

// Describe returns a one-line description, e.g. "certificate CN=broker (ECDSA P-256)".
func (o *Object) Describe() string {
	switch {
	case o.Cert != nil:
		return fmt.Sprintf("certificate %s (%s)", NameString(o.Cert.Subject), KeyDescription(o.Cert.PublicKey))
	case o.Key != nil:
		return fmt.Sprintf("private key (%s)", KeyDescription(o.Key.Public()))
	case o.PublicKey != nil:
		return fmt.Sprintf("%s (%s)", o.Kind, KeyDescription(o.PublicKey))
	}
	return o.Kind.String()
}

// PassphraseFunc returns the passphrase for the encrypted key called name. The CLI passes a
// prompt; PassphraseFromEnv and PassphraseFromFile cover scripts. Passphrases never come from a
// command-line flag, where every user of the machine can read them in the process list.
type PassphraseFunc func(name string) ([]byte, error)

// PassphraseFromEnv reads the passphrase from the environment variable v.
func PassphraseFromEnv(v string) PassphraseFunc {
	return func(string) ([]byte, error) {
		s, ok := os.LookupEnv(v)
		if !ok {
			return nil, fmt.Errorf("pki: environment variable %s (the key passphrase) is not set", v)
		}
		return []byte(s), nil
	}
}

// PassphraseFromFile reads the passphrase from the first line of file.
func PassphraseFromFile(file string) PassphraseFunc {
	return func(string) ([]byte, error) {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("pki: reading passphrase: %w", err)
		}
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[:i]
		}
		return bytes.TrimSuffix(b, []byte("\r")), nil
	}
}

// ParseOptions configures ParseWith.
type ParseOptions struct {
	// Passphrase decrypts encrypted PKCS#8 keys; nil leaves them encrypted, with Err
	// wrapping ErrNeedPassphrase.
	Passphrase PassphraseFunc
}

// Parse finds every certificate and key in data, whatever the form: PEM (one or many blocks),
// DER, base64 without armour, C headers with byte arrays or PEM string literals (wolfSSL's
// certs_test.h style), and Go byte slices. The form is detected from the content, never from
// name, which is only used in messages. Objects that fail to parse are returned too, each with
// Err naming the cause. The error is non-nil only when nothing at all was recognised.
func Parse(data []byte, name string) ([]Object, error) {
	return ParseWith(data, name, ParseOptions{})
}

// ParseWith is Parse with options (a passphrase for encrypted keys).
func ParseWith(data []byte, name string, opts ParseOptions) ([]Object, error) {
	p := parser{opts: opts}
	objs := p.parse(data, name)
	if len(objs) == 0 {
		return nil, &NotDERError{Name: name, Reason: describeJunk(data)}
	}
	return objs, nil
}

// ParseFile reads and parses file.
func ParseFile(file string, opts ParseOptions) ([]Object, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return ParseWith(b, file, opts)
}

type parser struct {
	opts ParseOptions
}

func (p *parser) parse(data []byte, name string) []Object {
	trimmed := bytes.TrimSpace(data)
	switch {
	case len(trimmed) == 0:
		return nil
	case trimmed[0] == 0x30 && len(data) > 1 && !isText(data):
		return p.parseDERSeq(data, name, ContainerDER)
	case bytes.Contains(data, []byte("-----BEGIN ")) && !looksLikeC(data):
		return p.parsePEM(data, name, ContainerPEM)
	case looksLikeC(data):
		return p.parseSource(data, name)
	}
	if der, ok := decodeBase64(trimmed); ok {
		objs := p.parseDERSeq(der, name, ContainerBase64)
		return objs
	}
	return nil
}

// parsePEM parses every PEM block in data; text between blocks is ignored.
func (p *parser) parsePEM(data []byte, name string, c Container) []Object {
	var objs []Object
	rest := data
	for {
		var block *pem.Block
		start := bytes.Index(rest, []byte("-----BEGIN "))
		if start < 0 {
			break
		}
		block, rest = pem.Decode(rest[start:])
		if block == nil {
			// A BEGIN line without a decodable block: broken base64 or missing END line.
			objs = append(objs, Object{Kind: KindUnknown, Container: c, Err: &NotDERError{Name: name, Reason: "a PEM block is damaged: missing END line or invalid base64 inside"}})
			break
		}
		if block.Type == "PKCS7" {
			if bundle, ok := p.pkcs7Certificates(block.Bytes); ok {
				objs = append(objs, bundle...)
				continue
			}
		}
		objs = append(objs, p.fromPEMBlock(block, c))
	}
	nameObjects(objs, name)
	return objs
}

func (p *parser) fromPEMBlock(b *pem.Block, c Container) Object {
	o := Object{Container: c, PEMType: b.Type}
	if _, ok := b.Headers["Proc-Type"]; ok {
		o.Kind = KindPrivateKey
		o.Encoding = "legacy encrypted PEM"
		o.Err = &EncryptedKeyError{Err: errors.New("pki: legacy OpenSSL PEM encryption (Proc-Type: 4,ENCRYPTED) is insecure and not supported")}
		return o
	}
	switch b.Type {
	case "CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE":
		p.fillCert(&o, b.Bytes)
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
		p.fillKey(&o, b.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		p.fillEncryptedKey(&o, b.Bytes)
	case "PUBLIC KEY", "RSA PUBLIC KEY":
		p.fillPublicKey(&o, b.Bytes)
	case "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST":
		p.fillCSR(&o, b.Bytes)
	case "EC PARAMETERS":
		o.Kind = KindUnknown
		o.Err = fmt.Errorf("pki: EC PARAMETERS block (written by openssl ecparam without -noout) is not a key; the key is the next block")
	default:
		p.classifyDER(&o, b.Bytes)
		if o.Kind == KindUnknown {
			o.Err = &NotDERError{Reason: fmt.Sprintf("PEM block type %q is not a certificate or key", b.Type)}
		}
	}
	return o
}

// parseDERSeq parses one or more concatenated DER objects.
func (p *parser) parseDERSeq(data []byte, name string, c Container) []Object {
	var objs []Object
	rest := data
	for len(rest) > 0 {
		n, err := derLength(rest)
		if err != nil {
			var te *TruncatedDERError
			if errors.As(err, &te) {
				te.Name = name
			}
			o := Object{Container: c, DER: rest, Err: err}
			if looksLikeCertificate(rest) {
				o.Kind, o.Encoding = KindCertificate, "X.509" // by its shape; it does not parse
			}
			objs = append(objs, o)
			break
		}
		if bundle, ok := p.pkcs7Certificates(rest[:n]); ok {
			objs = append(objs, bundle...)
		} else {
			o := Object{Container: c}
			p.classifyDER(&o, rest[:n])
			objs = append(objs, o)
		}
		rest = rest[n:]
		if len(bytes.Trim(rest, "\x00 \r\n\t")) == 0 {
			break // trailing NUL or whitespace padding
		}
		if rest[0] != 0x30 {
			last := &objs[len(objs)-1]
			last.Warnings = append(last.Warnings, &TrailingDataError{Name: name, Used: len(data) - len(rest), Extra: len(rest)})
			break
		}
	}
	nameObjects(objs, name)
	return objs
}

// classifyDER works out what a DER object is by trying the parsers in turn.
func (p *parser) classifyDER(o *Object, der []byte) {
	if c, err := x509.ParseCertificate(der); err == nil {
		o.Kind, o.Encoding, o.PEMType, o.DER, o.Cert, o.PublicKey = KindCertificate, "X.509", "CERTIFICATE", der, c, c.PublicKey
		return
	}
	if k, enc, typ, err := parsePrivateKeyDER(der); err == nil {
		o.setKey(k, enc, typ, der)
		return
	}
	if isEncryptedPKCS8(der) {
		p.fillEncryptedKey(o, der)
		return
	}
	if pub, err := x509.ParsePKIXPublicKey(der); err == nil {
		o.Kind, o.Encoding, o.PEMType, o.DER, o.PublicKey = KindPublicKey, "PKIX", "PUBLIC KEY", der, pub
		return
	}
	if pub, err := x509.ParsePKCS1PublicKey(der); err == nil {
		o.Kind, o.Encoding, o.PEMType, o.DER, o.PublicKey = KindPublicKey, "PKCS#1", "RSA PUBLIC KEY", der, pub
		return
	}
	if csr, err := x509.ParseCertificateRequest(der); err == nil {
		o.Kind, o.Encoding, o.PEMType, o.DER, o.CSR, o.PublicKey = KindCSR, "PKCS#10", "CERTIFICATE REQUEST", der, csr, csr.PublicKey
		return
	}
	o.DER = der
	if isPKCS12(der) {
		o.Err = &PKCS12Error{}
		return
	}
	// Well-formed ASN.1 that none of the parsers accepts: most likely a damaged certificate.
	_, err := x509.ParseCertificate(der)
	if looksLikeCertificate(der) {
		o.Kind = KindCertificate
		o.Encoding = "X.509"
		o.Err = &ParseError{Kind: KindCertificate, Err: err}
		return
	}
	o.Err = &NotDERError{Reason: "valid ASN.1 but not a certificate, key or request"}
}

func (o *Object) setKey(k crypto.Signer, enc, typ string, der []byte) {
	o.Kind, o.Encoding, o.PEMType, o.DER, o.Key, o.PublicKey = KindPrivateKey, enc, typ, der, k, k.Public()
}

func (p *parser) fillCert(o *Object, der []byte) {
	o.Kind, o.Encoding, o.DER = KindCertificate, "X.509", der
	c, err := x509.ParseCertificate(der)
	if err != nil {
		// Perhaps something else under a CERTIFICATE label, e.g. a key pasted into a cert file.
		var other Object
		p.classifyDER(&other, der)
		if other.Kind != KindCertificate && other.Kind != KindUnknown {
			other.Container, other.Err = o.Container, &WrongKindError{Want: KindCertificate, Got: other.Kind}
			*o = other
			return
		}
		if _, terr := derLength(der); terr != nil {
			o.Err = terr
			return
		}
		o.Err = &ParseError{Kind: KindCertificate, Err: err}
		return
	}
	o.Cert, o.PublicKey = c, c.PublicKey
}

func (p *parser) fillKey(o *Object, der []byte) {
	o.Kind, o.DER = KindPrivateKey, der
	k, enc, typ, err := parsePrivateKeyDER(der)
	if err != nil {
		if _, terr := derLength(der); terr != nil {
			o.Err = terr
			return
		}
		o.Err = &ParseError{Kind: KindPrivateKey, Err: err}
		return
	}
	o.setKey(k, enc, typ, der)
}

func (p *parser) fillPublicKey(o *Object, der []byte) {
	o.Kind, o.DER = KindPublicKey, der
	if pub, err := x509.ParsePKIXPublicKey(der); err == nil {
		o.Encoding, o.PublicKey = "PKIX", pub
		return
	}
	pub, err := x509.ParsePKCS1PublicKey(der)
	if err != nil {
		o.Err = &ParseError{Kind: KindPublicKey, Err: err}
		return
	}
	o.Encoding, o.PublicKey = "PKCS#1", pub
}

func (p *parser) fillCSR(o *Object, der []byte) {
	o.Kind, o.Encoding, o.DER = KindCSR, "PKCS#10", der
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		o.Err = &ParseError{Kind: KindCSR, Err: err}
		return
	}
	o.CSR, o.PublicKey = csr, csr.PublicKey
}

func (p *parser) fillEncryptedKey(o *Object, der []byte) {
	o.Kind, o.Encoding, o.PEMType, o.DER = KindPrivateKey, "encrypted PKCS#8", "ENCRYPTED PRIVATE KEY", der
	if p.opts.Passphrase == nil {
		o.Err = &EncryptedKeyError{Err: ErrNeedPassphrase}
		return
	}
	pass, err := p.opts.Passphrase(o.Name)
	if err != nil {
		o.Err = &EncryptedKeyError{Err: err}
		return
	}
	plain, err := DecryptPKCS8(der, pass)
	if err != nil {
		o.Err = &EncryptedKeyError{Err: err}
		return
	}
	k, _, _, err := parsePrivateKeyDER(plain)
	if err != nil {
		o.Err = &EncryptedKeyError{Err: fmt.Errorf("%w (decrypted data is not a key: %v)", ErrBadPassphrase, err)}
		return
	}
	o.setKey(k, "encrypted PKCS#8", "PRIVATE KEY", plain)
}

// parsePrivateKeyDER tries PKCS#8, PKCS#1 and SEC1.
func parsePrivateKeyDER(der []byte) (crypto.Signer, string, string, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, "", "", fmt.Errorf("pki: PKCS#8 key of type %T cannot sign", k)
		}
		return s, "PKCS#8", "PRIVATE KEY", nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, "PKCS#1", "RSA PRIVATE KEY", nil
	}
	k, err := x509.ParseECPrivateKey(der)
	if err == nil {
		return k, "SEC1", "EC PRIVATE KEY", nil
	}
	return nil, "", "", errors.New("not a PKCS#8, PKCS#1 or SEC1 private key")
}

// derLength returns the total length (header included) of the DER object at the start of b,
// or a *TruncatedDERError when b is shorter than it declares.
func derLength(b []byte) (int, error) {
	if len(b) < 2 {
		return 0, &TruncatedDERError{Declared: 2, Present: len(b)}
	}
	if b[0] != 0x30 {
		return 0, &NotDERError{Reason: fmt.Sprintf("DER certificates and keys start with 0x30 (SEQUENCE), this starts with 0x%02x", b[0])}
	}
	l := int(b[1])
	hdr := 2
	if l&0x80 != 0 {
		n := l & 0x7f
		if n == 0 || n > 4 {
			return 0, &NotDERError{Reason: "invalid ASN.1 length"}
		}
		if len(b) < 2+n {
			return 0, &TruncatedDERError{Declared: 2 + n, Present: len(b)}
		}
		l = 0
		for _, c := range b[2 : 2+n] {
			l = l<<8 | int(c)
		}
		hdr += n
	}
	if total := hdr + l; total > len(b) {
		return 0, &TruncatedDERError{Declared: total, Present: len(b)}
	} else {
		return total, nil
	}
}

// looksLikeCertificate reports whether der has the shape of a certificate: a SEQUENCE holding a
// SEQUENCE (tbsCertificate) that starts with the explicit version tag [0].
func looksLikeCertificate(der []byte) bool {
	if len(der) < 8 || der[0] != 0x30 {
		return false
	}
	hdr := 2
	if der[1]&0x80 != 0 {
		hdr += int(der[1] & 0x7f)
	}
	if hdr+2 >= len(der) || der[hdr] != 0x30 {
		return false
	}
	i := hdr + 2
	if der[hdr+1]&0x80 != 0 {
		i += int(der[hdr+1] & 0x7f)
	}
	return i < len(der) && der[i] == 0xa0
}

func nameObjects(objs []Object, name string) {
	for i := range objs {
		if objs[i].Name == "" {
			objs[i].Name = name
			if len(objs) > 1 {
				objs[i].Name = name + "#" + strconv.Itoa(i+1)
			}
		}
		setErrName(objs[i].Err, objs[i].Name)
	}
}

// namedError is a typed error that names the object it is about.
type namedError interface{ objectName() *string }

func (e *TruncatedDERError) objectName() *string  { return &e.Name }
func (e *NotDERError) objectName() *string        { return &e.Name }
func (e *WrongKindError) objectName() *string     { return &e.Name }
func (e *EncryptedKeyError) objectName() *string  { return &e.Name }
func (e *ParseError) objectName() *string         { return &e.Name }
func (e *PKCS12Error) objectName() *string        { return &e.Name }
func (e *PEMInArrayError) objectName() *string    { return &e.Name }
func (e *Base64InArrayError) objectName() *string { return &e.Name }

// setErrName fills in the name of typed errors created before the name was known.
func setErrName(err error, name string) {
	if e, ok := err.(namedError); ok && *e.objectName() == "" {
		*e.objectName() = name
	}
}

func isText(b []byte) bool {
	if len(b) > 4096 {
		b = b[:4096]
	}
	for _, c := range b {
		if c < 0x09 || (c > 0x0d && c < 0x20) || c >= 0x7f {
			return false
		}
	}
	return true
}

func decodeBase64(b []byte) ([]byte, bool) {
	clean := make([]byte, 0, len(b))
	for _, c := range b {
		switch {
		case c == ' ' || c == '\n' || c == '\r' || c == '\t':
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/', c == '=':
			clean = append(clean, c)
		default:
			return nil, false
		}
	}
	if len(clean) < 16 {
		return nil, false
	}
	der, err := base64.StdEncoding.DecodeString(string(clean))
	if err != nil {
		der, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(string(clean), "="))
		if err != nil {
			return nil, false
		}
	}
	if len(der) == 0 || der[0] != 0x30 {
		return nil, false
	}
	return der, true
}

func describeJunk(b []byte) string {
	t := bytes.TrimSpace(b)
	switch {
	case len(t) == 0:
		return "the data is empty"
	case bytes.HasPrefix(t, []byte("-----BEGIN")):
		return "a PEM header without a decodable block"
	case !isText(t):
		return fmt.Sprintf("binary data starting with 0x%02x; DER starts with 0x30", t[0])
	}
	line := t
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	if len(line) > 40 {
		line = line[:40]
	}
	return fmt.Sprintf("text starting %q", line)
}

// KeyDescription names a public key's algorithm and size, e.g. "ECDSA P-256", "RSA 2048".
func KeyDescription(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	case nil:
		return "no key"
	}
	return fmt.Sprintf("%T", pub)
}
