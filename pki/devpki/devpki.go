package devpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/fennec-mqtt/fennec/pki"
)

// KeyType selects the key algorithm of a generated certificate. The zero value is ECDSA P-256.
type KeyType int

const (
	KeyECDSAP256 KeyType = iota // ECDSA on NIST P-256 (the default)
	KeyRSA2048                  // RSA, 2048 bits
	KeyEd25519                  // Ed25519
)

func (k KeyType) String() string {
	switch k {
	case KeyECDSAP256:
		return "ECDSA P-256"
	case KeyRSA2048:
		return "RSA 2048"
	case KeyEd25519:
		return "Ed25519"
	}
	return fmt.Sprintf("KeyType(%d)", int(k))
}

func (k KeyType) generate() (crypto.Signer, error) {
	switch k {
	case KeyECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case KeyEd25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fmt.Errorf("devpki: unknown key type %d", int(k))
}

// CertSpec describes a certificate to generate. Zero values: key ECDSA P-256, valid from one
// hour ago for 825 days (the longest validity common TLS clients accept for a leaf).
type CertSpec struct {
	CommonName string
	// IsCA makes a certificate authority (basic constraints CA:TRUE, key usage certSign).
	IsCA bool
	// Server and Client select the extended key usages; a CA ignores them.
	Server, Client bool
	// DNSNames and IPAddresses become subject alternative names.
	DNSNames    []string
	IPAddresses []net.IP
	KeyType     KeyType
	NotBefore   time.Time // zero: now minus one hour
	NotAfter    time.Time // zero: NotBefore plus 825 days
}

// Issued is a generated certificate with its private key, in parsed and PEM form.
type Issued struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte // PKCS#8
}

// Issue generates a key pair and a certificate for spec, signed by parent; a nil parent makes the
// certificate self-signed.
func Issue(spec CertSpec, parent *Issued) (*Issued, error) {
	key, err := spec.KeyType.generate()
	if err != nil {
		return nil, fmt.Errorf("devpki: generating %v key: %w", spec.KeyType, err)
	}
	iss, err := issueFor(spec, key.Public(), key, parent)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	iss.Key, iss.KeyPEM = key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return iss, nil
}

// IssueFromCSR signs the public key of a certificate signing request with parent, for spec
// (the request's subject and extensions are not copied: spec says what the certificate holds).
// The request's signature is checked first. The Issued has no key: it stays with the requester.
func IssueFromCSR(spec CertSpec, csr *x509.CertificateRequest, parent *Issued) (*Issued, error) {
	if parent == nil {
		return nil, errors.New("devpki: a certificate from a CSR needs an issuer")
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("devpki: CSR signature: %w", err)
	}
	return issueFor(spec, csr.PublicKey, nil, parent)
}

// issueFor makes the certificate of spec for pub; key is pub's private key when known (it
// signs a self-signed certificate).
func issueFor(spec CertSpec, pub crypto.PublicKey, key crypto.Signer, parent *Issued) (*Issued, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	notBefore := spec.NotBefore
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-time.Hour)
	}
	notAfter := spec.NotAfter
	if notAfter.IsZero() {
		notAfter = notBefore.Add(825 * 24 * time.Hour)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	ski := sha1.Sum(pubDER)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: spec.CommonName, Organization: []string{"Fennec development"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		DNSNames:              spec.DNSNames,
		IPAddresses:           spec.IPAddresses,
		SubjectKeyId:          ski[:],
		BasicConstraintsValid: true,
	}
	if spec.IsCA {
		tmpl.IsCA = true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		if _, ok := pub.(*rsa.PublicKey); ok {
			tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
		}
		if spec.Server {
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		}
		if spec.Client {
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
		}
	}
	var signer crypto.Signer = key
	parentCert := tmpl
	if parent != nil {
		signer, parentCert = parent.Key, parent.Cert
	}
	if signer == nil {
		return nil, errors.New("devpki: a self-signed certificate needs its private key")
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("devpki: signing certificate %q: %w", spec.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Issued{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Options configures Generate. The zero value gives a CA, a server certificate for
// localhost, 127.0.0.1 and ::1, and one client certificate with the common name "fennec-client".
type Options struct {
	Hosts   []string // server DNS names; zero: "localhost"
	IPs     []net.IP // server IP SANs; zero: 127.0.0.1 and ::1
	Clients []string // client common names; zero: "fennec-client"
	KeyType KeyType
}

// PKI is a development certificate authority with a server certificate and client
// certificates, for brokers and tests. Never use it in production.
type PKI struct {
	CA      *Issued
	Server  *Issued
	Clients map[string]*Issued // by common name
	// ClientNames keeps the order in which the clients were requested.
	ClientNames []string
}

// Generate creates a fresh development PKI in memory.
func Generate(opts Options) (*PKI, error) {
	hosts, ips, clients := opts.Hosts, opts.IPs, opts.Clients
	if len(hosts) == 0 {
		hosts = []string{"localhost"}
	}
	if len(ips) == 0 {
		ips = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	if len(clients) == 0 {
		clients = []string{"fennec-client"}
	}
	ca, err := Issue(CertSpec{CommonName: "Fennec Development CA", IsCA: true, KeyType: opts.KeyType}, nil)
	if err != nil {
		return nil, err
	}
	srv, err := Issue(CertSpec{CommonName: hosts[0], Server: true, DNSNames: hosts, IPAddresses: ips, KeyType: opts.KeyType}, ca)
	if err != nil {
		return nil, err
	}
	p := &PKI{CA: ca, Server: srv, Clients: map[string]*Issued{}}
	for _, cn := range clients {
		c, err := Issue(CertSpec{CommonName: cn, Client: true, KeyType: opts.KeyType}, ca)
		if err != nil {
			return nil, err
		}
		p.Clients[cn] = c
		p.ClientNames = append(p.ClientNames, cn)
	}
	return p, nil
}

// Client returns the first client certificate.
func (p *PKI) Client() *Issued { return p.Clients[p.ClientNames[0]] }

// Files names the files WriteDir writes.
type Files struct {
	Dir        string
	CA         string // ca.pem
	ServerCert string // server.pem
	ServerKey  string // server-key.pem (mode 0600)
	// ClientCert and ClientKey are by client common name: <cn>.pem and <cn>-key.pem.
	ClientCert map[string]string
	ClientKey  map[string]string
}

// FirstClient returns the certificate and key file of the first client.
func (f Files) FirstClient(p *PKI) (cert, key string) {
	cn := p.ClientNames[0]
	return f.ClientCert[cn], f.ClientKey[cn]
}

// Files returns the file names WriteDir uses in dir for p.
func (p *PKI) Files(dir string) Files {
	f := Files{
		Dir:        dir,
		CA:         filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey:  filepath.Join(dir, "server-key.pem"),
		ClientCert: map[string]string{},
		ClientKey:  map[string]string{},
	}
	for _, cn := range p.ClientNames {
		f.ClientCert[cn] = filepath.Join(dir, cn+".pem")
		f.ClientKey[cn] = filepath.Join(dir, cn+"-key.pem")
	}
	return f
}

// WriteDir writes the PKI as PEM files into dir (created with mode 0700 when missing). Private
// keys are written with mode 0600, certificates with 0644. The CA's private key is written as
// ca-key.pem so that more certificates can be issued later.
func (p *PKI) WriteDir(dir string) (Files, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Files{}, fmt.Errorf("devpki: %w", err)
	}
	f := p.Files(dir)
	type file struct {
		name string
		data []byte
		mode os.FileMode
	}
	files := []file{
		{f.CA, p.CA.CertPEM, 0o644},
		{filepath.Join(dir, "ca-key.pem"), p.CA.KeyPEM, 0o600},
		{f.ServerCert, p.Server.CertPEM, 0o644},
		{f.ServerKey, p.Server.KeyPEM, 0o600},
	}
	for _, cn := range p.ClientNames {
		files = append(files, file{f.ClientCert[cn], p.Clients[cn].CertPEM, 0o644}, file{f.ClientKey[cn], p.Clients[cn].KeyPEM, 0o600})
	}
	for _, fl := range files {
		if err := pki.WriteFile(fl.name, fl.data, fl.mode); err != nil {
			return Files{}, err
		}
	}
	return f, nil
}

// ErrNotFound is returned by LoadDir when dir holds no development PKI.
var ErrNotFound = errors.New("devpki: no development PKI in directory")

// LoadDir reads a development PKI written by WriteDir. clients names the client common
// names to load; nil loads "fennec-client".
func LoadDir(dir string, clients []string) (*PKI, Files, error) {
	if len(clients) == 0 {
		clients = []string{"fennec-client"}
	}
	load := func(certFile, keyFile string) (*Issued, error) {
		cp, err := os.ReadFile(certFile)
		if err != nil {
			return nil, err
		}
		kp, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, err
		}
		cb, _ := pem.Decode(cp)
		kb, _ := pem.Decode(kp)
		if cb == nil || kb == nil {
			return nil, fmt.Errorf("devpki: %s or %s is not PEM", certFile, keyFile)
		}
		cert, err := x509.ParseCertificate(cb.Bytes)
		if err != nil {
			return nil, fmt.Errorf("devpki: %s: %w", certFile, err)
		}
		k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
		if err != nil {
			return nil, fmt.Errorf("devpki: %s: %w", keyFile, err)
		}
		signer, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("devpki: %s: key cannot sign", keyFile)
		}
		return &Issued{Cert: cert, Key: signer, CertPEM: cp, KeyPEM: kp}, nil
	}
	p := &PKI{Clients: map[string]*Issued{}, ClientNames: clients}
	f := p.Files(dir)
	if _, err := os.Stat(f.CA); errors.Is(err, os.ErrNotExist) {
		return nil, Files{}, fmt.Errorf("%w %s", ErrNotFound, dir)
	}
	var err error
	if p.CA, err = load(f.CA, filepath.Join(dir, "ca-key.pem")); err != nil {
		return nil, Files{}, err
	}
	if p.Server, err = load(f.ServerCert, f.ServerKey); err != nil {
		return nil, Files{}, err
	}
	for _, cn := range clients {
		c, err := load(f.ClientCert[cn], f.ClientKey[cn])
		if err != nil {
			return nil, Files{}, err
		}
		p.Clients[cn] = c
	}
	return p, f, nil
}
