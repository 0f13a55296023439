// Package pki holds everything X.509 and TLS that is not MQTT: building a *tls.Config, loading
// certificates and keys in whatever form they come, inspecting and converting them, and
// checking key pairs and dates with errors that name the cause. Explaining a failed
// handshake is package diagnose's job (diagnose.ExplainHandshake, with the HandshakeRecorder
// this package fills); generating certificates is package pki/devpki's.
//
// It depends on the standard library only.
//
// # Connecting with TLS
//
// ClientConfig builds the client side from ClientOptions: trusted CAs (files, bytes, the system
// roots, or several), the device certificate and key, TLS 1.2 as the minimum (anything lower is
// refused with *VersionError), SNI, ALPN, a session cache (on by default), a key-log writer for
// Wireshark (SSLKEYLOGFILE or an explicit file) and optional SPKI SHA-256 pins. Verification is
// on unless InsecureSkipVerify is set explicitly; callers must warn when it is.
//
//	rec := &pki.HandshakeRecorder{}
//	cfg, err := pki.ClientConfig(pki.ClientOptions{
//		CAs:      []pki.Source{pki.FileSource("AmazonRootCA1.pem")},
//		Cert:     pki.FileSource("device.pem.crt"),
//		Key:      pki.FileSource("private.pem.key"),
//		Recorder: rec,
//	})
//	conn, err := tls.Dial("tcp", "example-ats.iot.us-east-2.amazonaws.com:8883", cfg)
//	if err != nil {
//		d := diagnose.ExplainHandshake(err, rec) // cause and fix in plain words
//	}
//
// ServerConfig builds the broker side (TLS 1.3 minimum by default, client certificates
// verified against ClientCAs when given).
//
// # Failed handshakes
//
// Go's TLS errors do not say that the server asked for a client certificate, or which CAs it
// accepts. The HandshakeRecorder given to ClientConfig records that (through
// GetClientCertificate) and what the server presented; diagnose.ExplainHandshake combines it
// with the error into a *Diagnosis naming the cause: unknown authority (the issuer the server presented
// against the CAs you trust), host name mismatch (the names in the certificate), no common TLS
// version, a client certificate requested but not configured (with the CA names the server
// accepts), the client certificate rejected (alerts bad_certificate, unknown_ca,
// certificate_required ...), a connection closed or reset during or right after the handshake,
// a port that does not speak TLS.
//
// Under TLS 1.3 the server judges the client certificate after the client has finished its
// side of the handshake, so tls.Dial succeeds and the rejection arrives on the first read, as
// an alert or, depending on timing, as a connection reset. Pass the error of that first read to
// diagnose.ExplainHandshake too.
//
// # Loading by content
//
// Parse finds every certificate and key in a buffer and never trusts the file name: PEM (one
// or many blocks), DER (one or several concatenated), base64 without armour, C headers in the
// style of wolfSSL's certs_test.h (unsigned char arrays with sizeof_ constants, PEM in string
// literals), the Go slices EncodeGo writes, and PKCS#7 certificate bundles (.p7b); a PKCS#12
// file is recognised and named (*PKCS12Error) with the command that extracts it. Keys may be PKCS#8, PKCS#1, SEC1 or encrypted
// PKCS#8 (PBES2 with PBKDF2 and AES-CBC or 3DES, decrypted with the standard library); the
// passphrase comes from a PassphraseFunc (PassphraseFromEnv, PassphraseFromFile, or a prompt
// the caller supplies), never from a command-line value.
//
// Each Object carries its name (the C array name, or "file#n"), its Kind, how it was stored,
// its parsed value, and, when it is unusable, Err saying exactly why. The typed errors are:
//
//   - *PEMInArrayError: a "DER" array that holds PEM text (wolfSSL: ASN_PARSE_E, -140)
//   - *Base64InArrayError: an array holding the base64 inside a PEM file
//   - *TruncatedDERError: DER shorter than its ASN.1 header declares (both lengths given)
//   - *SizeMismatchError: a sizeof_ constant that disagrees with its array (a warning)
//   - *WrongKindError: e.g. a private key where a certificate was expected
//   - *KeyMismatchError: a key that does not belong to the certificate
//   - *ValidityError: expired (with the date) or not yet valid, and ClockUnset when the local
//     clock is before BuildTime, i.e. the device clock is probably unset
//   - *NotIssuedByError: not signed by the given CA (subjects and issuers shown)
//   - *NoCAError: a CA file without a CA certificate
//   - *PinError, *VersionError, *EncryptedKeyError, *ParseError,
//     *PKCS12Error, *NotDERError, *TrailingDataError (a warning)
//
// Every one has a plain-words message and a Hint method; Hint(err) finds it in a wrapped chain
// (certcheck's *HostnameError, *UsageError and *NameMismatchError too).
//
// LoadCertificates, LoadCAs, LoadKey and LoadKeyPair are the strict loaders built on Parse;
// CheckKeyPair and CheckValidity check a pair and a date; EncodeC, EncodeGo and
// Object.EncodePEM convert. Checking a whole set of objects, verifying a chain for a host and
// describing a certificate are package pki/certcheck's job.
//
// WriteFile writes a file atomically (temporary file, then rename) with exactly the permission
// bits given: private keys at 0600 from the first byte.
package pki
