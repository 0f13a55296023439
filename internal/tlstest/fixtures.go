package tlstest

import (
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/pki/devpki"
)

// Fixtures is a PKI generated once per test binary: the good CA and another CA with the same
// kind of name, servers with and without the right SANs, clients (ECDSA and RSA), expired and
// not-yet-valid certificates, and a key that matches nothing.
type Fixtures struct {
	CA, OtherCA, RSACA                  *devpki.Issued
	Server, ServerWrongSAN, ServerOther *devpki.Issued
	Client, ClientRSA, ClientOther      *devpki.Issued
	Expired, NotYetValid, Stray         *devpki.Issued
	ServerRSA                           *devpki.Issued
	ExpiredServer, FutureServer         *devpki.Issued
}

var (
	fixOnce sync.Once
	fix     *Fixtures
	fixErr  error
)

// Get returns the fixtures, generated on first use.
func Get(t testing.TB) *Fixtures {
	t.Helper()
	fixOnce.Do(func() { fix, fixErr = makeFixtures() })
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fix
}

func makeFixtures() (*Fixtures, error) {
	f := &Fixtures{}
	var err error
	must := func(spec devpki.CertSpec, parent *devpki.Issued) *devpki.Issued {
		if err != nil {
			return nil
		}
		var is *devpki.Issued
		is, err = devpki.Issue(spec, parent)
		return is
	}
	loop := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	now := time.Now()
	f.CA = must(devpki.CertSpec{CommonName: "Test Root CA", IsCA: true}, nil)
	f.OtherCA = must(devpki.CertSpec{CommonName: "Other Root CA", IsCA: true}, nil)
	f.RSACA = must(devpki.CertSpec{CommonName: "Test RSA CA", IsCA: true, KeyType: devpki.KeyRSA2048}, nil)
	f.Server = must(devpki.CertSpec{CommonName: "localhost", Server: true, DNSNames: []string{"localhost"}, IPAddresses: loop}, f.CA)
	f.ServerRSA = must(devpki.CertSpec{CommonName: "localhost", Server: true, DNSNames: []string{"localhost"}, IPAddresses: loop, KeyType: devpki.KeyRSA2048}, f.RSACA)
	f.ServerWrongSAN = must(devpki.CertSpec{CommonName: "broker.example.com", Server: true, DNSNames: []string{"broker.example.com"}}, f.CA)
	f.ServerOther = must(devpki.CertSpec{CommonName: "localhost", Server: true, DNSNames: []string{"localhost"}, IPAddresses: loop}, f.OtherCA)
	f.ExpiredServer = must(devpki.CertSpec{CommonName: "localhost", Server: true, DNSNames: []string{"localhost"}, IPAddresses: loop,
		NotBefore: now.Add(-400 * 24 * time.Hour), NotAfter: now.Add(-30 * 24 * time.Hour)}, f.CA)
	f.FutureServer = must(devpki.CertSpec{CommonName: "localhost", Server: true, DNSNames: []string{"localhost"}, IPAddresses: loop,
		NotBefore: now.Add(30 * 24 * time.Hour), NotAfter: now.Add(400 * 24 * time.Hour)}, f.CA)
	f.Client = must(devpki.CertSpec{CommonName: "device-1", Client: true}, f.CA)
	f.ClientRSA = must(devpki.CertSpec{CommonName: "device-rsa", Client: true, KeyType: devpki.KeyRSA2048}, f.RSACA)
	f.ClientOther = must(devpki.CertSpec{CommonName: "device-other", Client: true}, f.OtherCA)
	f.Expired = must(devpki.CertSpec{CommonName: "device-expired", Client: true,
		NotBefore: now.Add(-400 * 24 * time.Hour), NotAfter: now.Add(-30 * 24 * time.Hour)}, f.CA)
	f.NotYetValid = must(devpki.CertSpec{CommonName: "device-future", Client: true,
		NotBefore: now.Add(30 * 24 * time.Hour), NotAfter: now.Add(400 * 24 * time.Hour)}, f.CA)
	f.Stray = must(devpki.CertSpec{CommonName: "stray", Client: true}, f.CA)
	return f, err
}

// Write writes data to name in a fresh temp dir with mode 0644 (readable by mosquitto).
func Write(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
