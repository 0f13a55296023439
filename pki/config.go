package pki

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// ClientOptions configures ClientConfig. The zero value verifies the server against the system
// roots with TLS 1.2 or 1.3 and a session cache, without a client certificate.
type ClientOptions struct {
	// CAs are the trusted CA certificates, each a file or bytes in any form Parse accepts
	// (PEM, DER, C array, ...). Each must hold at least one CA certificate (*NoCAError).
	// Empty means the system roots.
	CAs []Source
	// SystemRoots adds the system roots to CAs (for a server whose CA may change).
	SystemRoots bool

	// Cert and Key are the client certificate (chain) and its private key. Key may be zero
	// when Cert holds both. Passphrase decrypts an encrypted PKCS#8 key.
	Cert, Key  Source
	Passphrase PassphraseFunc

	// MinVersion defaults to TLS 1.2; anything lower is refused with *VersionError.
	// MaxVersion zero means the highest Go supports (TLS 1.3).
	MinVersion, MaxVersion uint16

	// ServerName is sent as SNI and checked against the server's certificate. Empty: the
	// caller (tls.Dial) fills in the host being dialled.
	ServerName string
	// NextProtos are the ALPN protocols to offer (AWS IoT uses "x-amzn-mqtt-ca" on port 443).
	NextProtos []string

	// SessionCache enables session resumption; nil means a fresh LRU cache of 64 entries.
	// Set DisableSessionCache to turn resumption off.
	SessionCache        tls.ClientSessionCache
	DisableSessionCache bool

	// KeyLogWriter receives TLS secrets in NSS key log format, so that a capture can be
	// decrypted with Wireshark (both it and a file when both are given). KeyLogFile names a
	// file to append to; KeyLogFromEnv uses the
	// SSLKEYLOGFILE environment variable. Never leave these on in production.
	KeyLogWriter  io.Writer
	KeyLogFile    string
	KeyLogFromEnv bool

	// Pins, when set, require a certificate in the server's verified chain (or its leaf when
	// verification is off) whose SubjectPublicKeyInfo SHA-256 matches one of them. A pin is
	// written "sha256/BASE64", plain base64, or hex, as SPKIPin returns.
	Pins []string

	// InsecureSkipVerify turns off certificate and host name verification. Only for
	// debugging; the caller must warn every time it is used.
	InsecureSkipVerify bool

	// Time, when set, is the clock certificates are checked against (tls.Config.Time); nil
	// means time.Now. Tests use it to play a device whose clock is unset.
	Time func() time.Time

	// Recorder, when set, records what happened in each handshake (whether the server asked
	// for a client certificate and which CAs it accepts) so that ExplainHandshake can say why
	// a handshake failed.
	Recorder *HandshakeRecorder
}

// ClientConfig builds a *tls.Config for an MQTT (or any TLS) client from opts. Loading errors
// name their cause: *NoCAError, *WrongKindError, *KeyMismatchError, *PEMInArrayError, ...
func ClientConfig(opts ClientOptions) (*tls.Config, error) {
	cfg := &tls.Config{
		ServerName:         opts.ServerName,
		NextProtos:         opts.NextProtos,
		InsecureSkipVerify: opts.InsecureSkipVerify,
		Time:               opts.Time,
	}
	var err error
	if cfg.MinVersion, cfg.MaxVersion, err = versions(opts.MinVersion, opts.MaxVersion, tls.VersionTLS12); err != nil {
		return nil, err
	}
	var caSubjects []string
	if cfg.RootCAs, caSubjects, err = roots(opts); err != nil {
		return nil, err
	}
	cert, err := clientCert(opts)
	if err != nil {
		return nil, err
	}

	if !opts.DisableSessionCache {
		cfg.ClientSessionCache = opts.SessionCache
		if cfg.ClientSessionCache == nil {
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(64)
		}
	}

	if opts.Recorder != nil && cfg.ClientSessionCache != nil {
		// The session cache is consulted at the start of every handshake: the recorder
		// forgets the previous handshake there, so a reused config needs no Reset.
		cfg.ClientSessionCache = resettingCache{cfg.ClientSessionCache, opts.Recorder}
	}

	if cfg.KeyLogWriter, err = keyLog(opts); err != nil {
		return nil, err
	}

	pins, err := parsePins(opts.Pins)
	if err != nil {
		return nil, err
	}

	rec := opts.Recorder
	if rec != nil {
		rec.configure(caSubjects, opts, cfg, cert)
	}
	switch {
	case rec != nil:
		cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			sent := cert != nil && cri.SupportsCertificate(cert) == nil
			rec.recordRequest(cri, sent, cert != nil)
			if cert == nil {
				return &tls.Certificate{}, nil // send none; the server decides
			}
			return cert, nil
		}
	case cert != nil:
		cfg.Certificates = []tls.Certificate{*cert}
	}

	if len(pins) > 0 || rec != nil {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if rec != nil {
				rec.recordState(cs)
			}
			if len(pins) == 0 {
				return nil
			}
			return checkPins(cs, pins)
		}
	}
	return cfg, nil
}

// roots is the pool of CAs that verify the server (nil: the system roots) and how a report
// names them.
func roots(opts ClientOptions) (*x509.CertPool, []string, error) {
	if len(opts.CAs) == 0 {
		return nil, []string{"the system roots"}, nil
	}
	pool := x509.NewCertPool()
	if opts.SystemRoots {
		var err error
		if pool, err = x509.SystemCertPool(); err != nil {
			return nil, nil, fmt.Errorf("pki: system roots: %w", err)
		}
	}
	subjects, err := addCAs(pool, opts.CAs)
	if err != nil {
		return nil, nil, err
	}
	return pool, subjects, nil
}

// clientCert is the client's certificate and key, or nil without one.
func clientCert(opts ClientOptions) (*tls.Certificate, error) {
	if !opts.Cert.IsZero() {
		c, err := LoadKeyPair(opts.Cert, opts.Key, opts.Passphrase)
		if err != nil {
			return nil, err
		}
		return &c, nil
	} else if !opts.Key.IsZero() {
		return nil, errors.New("pki: a client key was given without its certificate")
	}
	return nil, nil
}

// configure records what a handshake with cfg is set up to do, for the report after it.
func (rec *HandshakeRecorder) configure(trusted []string, opts ClientOptions, cfg *tls.Config, cert *tls.Certificate) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.trusted = trusted
	rec.insecure = opts.InsecureSkipVerify
	rec.now = opts.Time
	rec.minVersion, rec.maxVersion = cfg.MinVersion, cfg.MaxVersion
	if cert != nil {
		rec.clientSubject = NameString(cert.Leaf.Subject)
		rec.clientIssuer = NameString(cert.Leaf.Issuer)
		rec.clientLeaf = cert.Leaf
		rec.hasClientCert = true
	}
}

// addCAs loads the CA certificates of every source into pool and returns their subjects.
func addCAs(pool *x509.CertPool, srcs []Source) ([]string, error) {
	var subjects []string
	for _, src := range srcs {
		cas, err := LoadCAs(src)
		if err != nil {
			return nil, err
		}
		for _, c := range cas {
			pool.AddCert(c)
			subjects = append(subjects, NameString(c.Subject))
		}
	}
	return subjects, nil
}

func versions(min, max, def uint16) (uint16, uint16, error) {
	if min == 0 {
		min = def
	}
	if min < tls.VersionTLS12 {
		return 0, 0, &VersionError{Field: "MinVersion", Version: min}
	}
	if max != 0 && max < tls.VersionTLS12 {
		return 0, 0, &VersionError{Field: "MaxVersion", Version: max}
	}
	if max != 0 && max < min {
		return 0, 0, fmt.Errorf("pki: maximum TLS version %s is below the minimum %s", versionName(max), versionName(min))
	}
	return min, max, nil
}

// ParseVersion parses "1.2" or "1.3" (also "tls1.2", "tlsv1.3") into a tls.Version* constant.
// Versions below 1.2 are refused.
func ParseVersion(s string) (uint16, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(strings.ToLower(s), "tls"), "v")
	switch t {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	case "1.0", "1", "1.1":
		return 0, fmt.Errorf("pki: TLS %s refused: TLS below 1.2 is insecure and not supported", t)
	}
	return 0, fmt.Errorf("pki: unknown TLS version %q (want 1.2 or 1.3)", s)
}

func versionName(v uint16) string {
	if v == 0 {
		return "default"
	}
	return tls.VersionName(v)
}

// keyLog returns the key log writer: KeyLogWriter, the file, or both.
func keyLog(opts ClientOptions) (io.Writer, error) {
	path := opts.KeyLogFile
	if path == "" && opts.KeyLogFromEnv {
		path = os.Getenv("SSLKEYLOGFILE")
	}
	if path == "" {
		return opts.KeyLogWriter, nil
	}
	w := keyLogFile(path)
	if _, err := w.Write(nil); err != nil { // can it be opened? say so now, not at the handshake
		return nil, err
	}
	if opts.KeyLogWriter != nil {
		return io.MultiWriter(opts.KeyLogWriter, w), nil
	}
	return w, nil
}

// keyLogFile appends each key log line to a file it opens for that line and closes again: no
// file stays open after a connection's handshake, and nothing is held per path for the life of
// the process. crypto/tls writes one whole line per call, and O_APPEND keeps concurrent
// handshakes' lines whole.
type keyLogFile string

func (k keyLogFile) Write(p []byte) (int, error) {
	f, err := os.OpenFile(string(k), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("pki: key log file: %w", err)
	}
	n, err := f.Write(p)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// SPKIPin returns the pin of a certificate's public key: "sha256/" followed by the base64
// SHA-256 of its SubjectPublicKeyInfo (the form HPKP and curl's --pinnedpubkey use).
func SPKIPin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256/" + base64.StdEncoding.EncodeToString(sum[:])
}

func parsePins(pins []string) ([][]byte, error) {
	var out [][]byte
	for _, p := range pins {
		s := strings.TrimPrefix(strings.TrimSpace(p), "sha256/")
		if b, err := hex.DecodeString(strings.ReplaceAll(s, ":", "")); err == nil && len(b) == sha256.Size {
			out = append(out, b)
			continue
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("pki: SPKI pin %q is not a base64 or hex SHA-256", p)
		}
		out = append(out, b)
	}
	return out, nil
}

func checkPins(cs tls.ConnectionState, pins [][]byte) error {
	var certs []*x509.Certificate
	for _, chain := range cs.VerifiedChains {
		certs = append(certs, chain...)
	}
	if len(certs) == 0 {
		certs = cs.PeerCertificates
	}
	for _, c := range certs {
		sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		for _, p := range pins {
			if string(p) == string(sum[:]) {
				return nil
			}
		}
	}
	if len(cs.PeerCertificates) == 0 {
		return &PinError{Subject: "(no certificate)"}
	}
	leaf := cs.PeerCertificates[0]
	return &PinError{Subject: NameString(leaf.Subject), Got: strings.TrimPrefix(SPKIPin(leaf), "sha256/")}
}

// HandshakeRecorder remembers what the TLS layer saw during the most recent handshake of the
// connections made with one config, for explaining failures: Go's errors do not say that the
// server asked for a client certificate, or which CAs it accepts. It is safe for concurrent
// use, but records one handshake at a time: give concurrent connections their own config and
// recorder.
type HandshakeRecorder struct {
	mu            sync.Mutex
	trusted       []string
	insecure      bool
	hasClientCert bool
	clientSubject string
	clientIssuer  string
	clientLeaf    *x509.Certificate
	minVersion    uint16
	maxVersion    uint16
	now           func() time.Time
	info          HandshakeInfo
}

// HandshakeInfo is what a HandshakeRecorder saw.
type HandshakeInfo struct {
	// CertificateRequested is true when the server asked for a client certificate.
	CertificateRequested bool
	// AcceptableCAs are the distinguished names of the CAs the server accepts client
	// certificates from, as it announced them (empty when it did not say).
	AcceptableCAs []string
	// CertificateSent is true when a client certificate was sent.
	CertificateSent bool
	// CertificateUnsuitable is true when a certificate was configured but the server's
	// request says it does not accept it (wrong CA or signature algorithm); it was sent anyway.
	CertificateUnsuitable bool
	// Verified is true when the server's certificate was verified (the handshake got past
	// the server's Certificate message).
	Verified bool
	// Complete is true when the caller reported the handshake as finished with
	// MarkComplete: a close after that happened after the handshake, not during it.
	Complete bool
	// Version is the negotiated TLS version, and ALPN the negotiated protocol, once verified.
	Version uint16
	ALPN    string
	// ServerChain is the certificate chain the server presented, once verified.
	ServerChain []*x509.Certificate

	// Trusted are the subjects of the CA certificates the client trusts.
	Trusted []string
	// ClientCert is true when a client certificate was configured; ClientSubject and
	// ClientIssuer describe it.
	ClientCert                  bool
	ClientSubject, ClientIssuer string
	// MinVersion and MaxVersion are the TLS versions the client allows (0: Go's maximum).
	MinVersion, MaxVersion uint16
	// ClientLeaf is the configured client certificate.
	ClientLeaf *x509.Certificate
	Insecure   bool
	// Now is the client's clock when Info was called (ClientOptions.Time, else time.Now).
	Now time.Time
}

// Info returns a copy of what was recorded.
func (r *HandshakeRecorder) Info() HandshakeInfo {
	if r == nil {
		return HandshakeInfo{Now: time.Now()}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i := r.info
	i.Now = time.Now()
	if r.now != nil {
		i.Now = r.now()
	}
	i.AcceptableCAs = append([]string(nil), i.AcceptableCAs...)
	i.ServerChain = append([]*x509.Certificate(nil), i.ServerChain...)
	i.Trusted = append([]string(nil), r.trusted...)
	i.ClientCert, i.ClientSubject, i.ClientIssuer, i.Insecure = r.hasClientCert, r.clientSubject, r.clientIssuer, r.insecure
	i.ClientLeaf = r.clientLeaf
	i.MinVersion, i.MaxVersion = r.minVersion, r.maxVersion
	return i
}

// resettingCache resets a recorder when a handshake starts (crypto/tls looks up the session
// cache first thing in every client handshake).
type resettingCache struct {
	tls.ClientSessionCache
	rec *HandshakeRecorder
}

func (c resettingCache) Get(key string) (*tls.ClientSessionState, bool) {
	c.rec.Reset()
	return c.ClientSessionCache.Get(key)
}

// Reset forgets the previous handshake. ClientConfig resets the recorder automatically at the
// start of each handshake while the session cache is on (the default); with
// DisableSessionCache, call Reset before each connection attempt.
func (r *HandshakeRecorder) Reset() {
	r.mu.Lock()
	r.info = HandshakeInfo{}
	r.mu.Unlock()
}

// MarkComplete records that the handshake finished (tls.Conn.Handshake returned nil), so
// that a connection closed later is not taken for a failure during the handshake. Under TLS
// 1.2 this is what separates "the server refused the client certificate" from "the server
// refused at the next layer" when the server closes without an alert.
func (r *HandshakeRecorder) MarkComplete() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.info.Complete = true
	r.mu.Unlock()
}

func (r *HandshakeRecorder) recordRequest(cri *tls.CertificateRequestInfo, suitable, configured bool) {
	names := make([]string, 0, len(cri.AcceptableCAs))
	for _, raw := range cri.AcceptableCAs {
		names = append(names, rawNameString(raw))
	}
	r.mu.Lock()
	r.info.CertificateRequested = true
	r.info.AcceptableCAs = names
	r.info.CertificateSent = configured
	r.info.CertificateUnsuitable = configured && !suitable
	r.mu.Unlock()
}

func (r *HandshakeRecorder) recordState(cs tls.ConnectionState) {
	r.mu.Lock()
	r.info.Verified = true
	r.info.Version = cs.Version
	r.info.ALPN = cs.NegotiatedProtocol
	r.info.ServerChain = cs.PeerCertificates
	r.mu.Unlock()
}

func rawNameString(raw []byte) string {
	var seq pkix.RDNSequence
	if _, err := asn1.Unmarshal(raw, &seq); err != nil {
		return fmt.Sprintf("(unparsable name %x)", raw)
	}
	var n pkix.Name
	n.FillFromRDNSequence(&seq)
	return NameString(n)
}

// ServerOptions configures ServerConfig, for the embedded broker and test servers.
type ServerOptions struct {
	// Cert and Key are the server certificate (chain) and key; Key may be zero when Cert
	// holds both.
	Cert, Key  Source
	Passphrase PassphraseFunc
	// ClientCAs, when set, are the CAs client certificates must chain to.
	ClientCAs []Source
	// ClientAuth zero means tls.RequireAndVerifyClientCert when ClientCAs are set and
	// tls.NoClientCert otherwise.
	ClientAuth tls.ClientAuthType
	// MinVersion defaults to TLS 1.3; below 1.2 is refused. MaxVersion zero means TLS 1.3.
	MinVersion, MaxVersion uint16
	NextProtos             []string
	KeyLogWriter           io.Writer
}

// ServerConfig builds a *tls.Config for a TLS server.
func ServerConfig(opts ServerOptions) (*tls.Config, error) {
	cfg := &tls.Config{NextProtos: opts.NextProtos, KeyLogWriter: opts.KeyLogWriter}
	var err error
	if cfg.MinVersion, cfg.MaxVersion, err = versions(opts.MinVersion, opts.MaxVersion, tls.VersionTLS13); err != nil {
		return nil, err
	}
	if opts.Cert.IsZero() {
		return nil, errors.New("pki: a server needs a certificate")
	}
	c, err := LoadKeyPair(opts.Cert, opts.Key, opts.Passphrase)
	if err != nil {
		return nil, err
	}
	cfg.Certificates = []tls.Certificate{c}
	cfg.ClientAuth = opts.ClientAuth
	if len(opts.ClientCAs) > 0 {
		pool := x509.NewCertPool()
		if _, err := addCAs(pool, opts.ClientCAs); err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		if cfg.ClientAuth == tls.NoClientCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return cfg, nil
}
