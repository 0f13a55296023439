package pki

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Every error this package returns for a certificate or key problem is one of the typed errors
// below. Each has a message in plain words that names the cause and a Hint method saying what to
// do about it; Hint(err) finds the hint anywhere in a wrapped chain.

// Hinter is implemented by errors that know what the user should do next.
type Hinter interface {
	Hint() string
}

// Hint returns the hint of the first error in err's chain that has one, or "".
func Hint(err error) string {
	var h Hinter
	if errors.As(err, &h) {
		return h.Hint()
	}
	return ""
}

// ErrNoObjects is wrapped by Parse when the data holds nothing it recognises.
var ErrNoObjects = errors.New("pki: no certificate or key found")

// ErrNeedPassphrase is wrapped when an encrypted private key is found and no passphrase source
// was given.
var ErrNeedPassphrase = errors.New("pki: the private key is encrypted and no passphrase was given")

// ErrBadPassphrase is wrapped when an encrypted private key does not decrypt with the passphrase.
var ErrBadPassphrase = errors.New("pki: wrong passphrase for the encrypted private key")

// PEMInArrayError reports a C array (or a file that should hold DER) whose bytes are PEM text:
// the classic hand conversion that makes wolfSSL fail with ASN_PARSE_E (-140) when the buffer is
// loaded as DER (WOLFSSL_FILETYPE_ASN1).
type PEMInArrayError struct {
	Name     string // the array or file name
	PEMType  string // the PEM block type inside, e.g. "CERTIFICATE"
	Declared string // how the array was declared, e.g. "unsigned char x[]"
}

func (e *PEMInArrayError) Error() string {
	return fmt.Sprintf("pki: %s: the array meant to hold DER (binary ASN.1) actually holds PEM text (%q); loaded as DER it fails to parse (wolfSSL: ASN_PARSE_E -140)", e.Name, "-----BEGIN "+e.PEMType+"-----")
}

// Hint implements Hinter.
func (e *PEMInArrayError) Hint() string {
	return "convert the PEM file to a real DER array: fennec cert convert --to c FILE.pem --name " + cIdent(e.Name) +
		"\nor keep the PEM text and load it as PEM (wolfSSL: WOLFSSL_FILETYPE_PEM)"
}

// Base64InArrayError reports an array whose bytes are base64 text (a PEM body without its
// armour) instead of the DER the base64 encodes.
type Base64InArrayError struct {
	Name string
}

func (e *Base64InArrayError) Error() string {
	return fmt.Sprintf("pki: %s: the array holds base64 text (the inside of a PEM file) instead of the binary DER it encodes", e.Name)
}

// Hint implements Hinter.
func (e *Base64InArrayError) Hint() string {
	return "convert the original PEM file: fennec cert convert --to c FILE.pem --name " + cIdent(e.Name)
}

// PEMNoNewlineError reports PEM text in C string literals without line ends: the literals
// concatenate into one line, which firmware PEM parsers (wolfSSL, mbedTLS) reject.
type PEMNoNewlineError struct {
	Name string
}

func (e *PEMNoNewlineError) Error() string {
	return fmt.Sprintf("pki: %s: the string literals hold PEM lines without \\n line ends, so they concatenate into one line; firmware PEM parsers reject it (a PEM file needs its BEGIN, base64 and END lines)", e.Name)
}

// Hint implements Hinter.
func (e *PEMNoNewlineError) Hint() string {
	return "end every literal with \\n (\"-----BEGIN CERTIFICATE-----\\n\" ...), or convert the PEM file to a DER array: fennec cert convert --to c FILE.pem --name " + cIdent(e.Name)
}

// UnarmouredBase64Error reports a file of bare base64 (a PEM body without its BEGIN and END
// lines): fennec reads it, but firmware loaders expect PEM with its armour, or DER.
type UnarmouredBase64Error struct {
	Name string
}

func (e *UnarmouredBase64Error) Error() string {
	return fmt.Sprintf("pki: %s: base64 without PEM armour (no -----BEGIN/END----- lines): fennec reads it, but firmware loaders (wolfSSL, mbedTLS) expect PEM with its armour or DER, and fail on it", e.Name)
}

// Hint implements Hinter.
func (e *UnarmouredBase64Error) Hint() string {
	return "write it as PEM or DER: fennec cert convert --to pem FILE (or --to der, or --to c for a C array)"
}

// TruncatedDERError reports DER whose outer length says more bytes than are present.
type TruncatedDERError struct {
	Name     string
	Declared int // total length the ASN.1 header declares (header included)
	Present  int // bytes actually present
}

func (e *TruncatedDERError) Error() string {
	return fmt.Sprintf("pki: %s: DER is truncated: its ASN.1 header declares %d bytes but only %d are present (%d missing)",
		e.Name, e.Declared, e.Present, e.Declared-e.Present)
}

// Hint implements Hinter.
func (e *TruncatedDERError) Hint() string {
	return "the array or file was cut short (copy/paste or a wrong sizeof_ length); regenerate it: fennec cert convert --to c FILE"
}

// NotDERError reports bytes that are neither PEM, DER, a C array nor base64.
type NotDERError struct {
	Name   string
	Reason string
}

func (e *NotDERError) Error() string {
	return fmt.Sprintf("pki: %s: not a certificate or key in any known form (PEM, DER, C array, base64): %s", e.Name, e.Reason)
}

// Hint implements Hinter.
func (e *NotDERError) Hint() string {
	return "check that this is the file you meant; fennec cert inspect shows what a file holds"
}

// SizeMismatchError reports a C array whose sizeof_ constant disagrees with its contents.
type SizeMismatchError struct {
	Name     string
	Declared int // the sizeof_ constant
	Present  int // bytes in the initializer
}

func (e *SizeMismatchError) Error() string {
	return fmt.Sprintf("pki: %s: sizeof_%s says %d bytes but the array holds %d", e.Name, e.Name, e.Declared, e.Present)
}

// Hint implements Hinter.
func (e *SizeMismatchError) Hint() string {
	return "use sizeof(" + e.Name + ") instead of a hand-written number, or regenerate the header with fennec cert convert --to c"
}

// TrailingDataError reports bytes after a complete DER object (a warning: the object is
// usable, but a loader given the whole length may refuse it).
type TrailingDataError struct {
	Name        string
	Used, Extra int
}

func (e *TrailingDataError) Error() string {
	return fmt.Sprintf("pki: %s: %d bytes of data follow the %d-byte DER object", e.Name, e.Extra, e.Used)
}

// Hint implements Hinter.
func (e *TrailingDataError) Hint() string {
	return "pass the DER length, not the buffer size, to the loader, or regenerate the data with fennec cert convert"
}

// WrongKindError reports an object of one kind where another was expected, e.g. a private key
// given as the certificate.
type WrongKindError struct {
	Name      string
	Want, Got Kind
}

func (e *WrongKindError) Error() string {
	return fmt.Sprintf("pki: %s: expected %s but found %s", e.Name, e.Want.article(), e.Got.article())
}

// Hint implements Hinter.
func (e *WrongKindError) Hint() string {
	switch {
	case e.Want == KindCertificate && e.Got == KindPrivateKey:
		return "the certificate and key files look swapped: pass the certificate (BEGIN CERTIFICATE) as the certificate and the key as the key"
	case e.Want == KindPrivateKey && e.Got == KindCertificate:
		return "the certificate and key files look swapped: pass the private key (BEGIN ... PRIVATE KEY) as the key"
	}
	return "fennec cert inspect FILE shows what the file holds"
}

// KeyMismatchError reports a private key that does not belong to the certificate.
type KeyMismatchError struct {
	CertName, KeyName string
	Subject           string // the certificate's subject
	CertKey, Key      string // key descriptions, e.g. "ECDSA P-256"
}

func (e *KeyMismatchError) Error() string {
	s := fmt.Sprintf("pki: the private key %s does not match the certificate %s (%s)", e.KeyName, e.CertName, e.Subject)
	if e.CertKey != e.Key {
		s += fmt.Sprintf(": the certificate holds a %s public key, the key is %s", e.CertKey, e.Key)
	}
	return s
}

// Hint implements Hinter.
func (e *KeyMismatchError) Hint() string {
	return "use the key generated together with this certificate; fennec cert check CERT KEY shows which key matches which certificate"
}

// ValidityError reports a certificate used outside its validity period.
type ValidityError struct {
	Subject             string
	NotBefore, NotAfter time.Time
	Now                 time.Time
	// Expired is true when Now is after NotAfter; otherwise the certificate is not valid yet.
	Expired bool
	// ClockUnset is true when Now is before BuildTime: the local clock, not the certificate,
	// is most likely wrong (a device without RTC or NTP starts in 1970 or 2000).
	ClockUnset bool
}

func (e *ValidityError) Error() string {
	var s string
	if e.Expired {
		s = fmt.Sprintf("pki: certificate %s expired on %s (now is %s)", e.Subject, e.NotAfter.UTC().Format(time.RFC3339), e.Now.UTC().Format(time.RFC3339))
	} else {
		s = fmt.Sprintf("pki: certificate %s is not valid before %s (now is %s)", e.Subject, e.NotBefore.UTC().Format(time.RFC3339), e.Now.UTC().Format(time.RFC3339))
	}
	if e.ClockUnset {
		s += "; the local clock is before this program was built, so the device clock is probably unset"
	}
	return s
}

// Hint implements Hinter.
func (e *ValidityError) Hint() string {
	if e.ClockUnset {
		return "set the clock (NTP, or an RTC set at boot) before connecting; TLS needs the real date to check certificates"
	}
	if e.Expired {
		return "renew the certificate (for a development PKI: fennec cert gen)"
	}
	return "wait until the certificate becomes valid, or check the clocks of the machine that issued it and of this one"
}

// NotIssuedByError reports a certificate that the given CA did not sign.
type NotIssuedByError struct {
	Subject, Issuer string   // the certificate's subject and issuer
	CASubjects      []string // the subjects of the CA certificates given
	// Reason says how it failed: the issuer names differ, or they match but the signature does not.
	Reason string
	// SameName is true when a CA has the issuer's name but did not sign the certificate.
	SameName bool
}

func (e *NotIssuedByError) Error() string {
	return fmt.Sprintf("pki: certificate %s was not issued by the given CA: it names issuer %s, the CA is %s (%s)",
		e.Subject, e.Issuer, strings.Join(e.CASubjects, "; "), e.Reason)
}

// Hint implements Hinter.
func (e *NotIssuedByError) Hint() string {
	if e.SameName {
		return "the CA was regenerated after the certificate was issued: use the CA file generated together with this certificate, or reissue the certificate"
	}
	return "use the CA certificate whose subject is " + e.Issuer + " (for AWS IoT server certificates: Amazon Root CA 1)"
}

// NoCAError reports a file given as CA that holds no CA certificate.
type NoCAError struct {
	Name  string
	Found []string // what the file holds instead, one description each
}

func (e *NoCAError) Error() string {
	if len(e.Found) == 0 {
		return fmt.Sprintf("pki: %s: no CA certificate in the CA file", e.Name)
	}
	return fmt.Sprintf("pki: %s: no CA certificate in the CA file; it holds %s", e.Name, strings.Join(e.Found, ", "))
}

// Hint implements Hinter.
func (e *NoCAError) Hint() string {
	return "pass the certificate of the authority that signed the server (basic constraints CA:TRUE), not the server's or your own certificate"
}

// PinError reports a server whose public key matches none of the configured SPKI pins.
type PinError struct {
	Subject string
	Got     string // base64 SHA-256 of the leaf's SubjectPublicKeyInfo
}

func (e *PinError) Error() string {
	return fmt.Sprintf("pki: no certificate in the server's chain matches a configured SPKI pin (server %s has sha256/%s)", e.Subject, e.Got)
}

// Hint implements Hinter.
func (e *PinError) Hint() string {
	return "the server's key changed or the pin is wrong; fennec cert inspect shows a certificate's SPKI SHA-256"
}

// VersionError reports a refused TLS version setting.
type VersionError struct {
	Field   string // "MinVersion" or "MaxVersion"
	Version uint16
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("pki: %s %s refused: TLS below 1.2 is insecure and not supported", e.Field, versionName(e.Version))
}

// Hint implements Hinter.
func (e *VersionError) Hint() string { return "use TLS 1.2 or 1.3" }

// EncryptedKeyError reports an encrypted private key that could not be decrypted.
type EncryptedKeyError struct {
	Name string
	Err  error // ErrNeedPassphrase, ErrBadPassphrase or the unsupported scheme
}

func (e *EncryptedKeyError) Error() string {
	return fmt.Sprintf("pki: %s: %v", e.Name, trimPrefix(e.Err))
}
func (e *EncryptedKeyError) Unwrap() error { return e.Err }

// Hint implements Hinter.
func (e *EncryptedKeyError) Hint() string {
	switch {
	case errors.Is(e.Err, ErrNeedPassphrase):
		return "give the passphrase from a file or an environment variable (never on the command line), or decrypt the key once: openssl pkcs8 -in KEY -out KEY.plain"
	case errors.Is(e.Err, ErrBadPassphrase):
		return "check the passphrase (a trailing newline in a passphrase file is ignored)"
	}
	return "re-encrypt with PBES2 (openssl pkcs8 -topk8 -v2 aes-256-cbc) or decrypt the key"
}

// ParseError reports an object that was recognised but failed to parse.
type ParseError struct {
	Name string
	Kind Kind
	Err  error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("pki: %s: %s does not parse: %v", e.Name, e.Kind.article(), e.Err)
}
func (e *ParseError) Unwrap() error { return e.Err }

// Hint implements Hinter.
func (e *ParseError) Hint() string {
	return "the data is damaged or not what its header says; regenerate it"
}

func trimPrefix(err error) string { return strings.TrimPrefix(err.Error(), "pki: ") }
