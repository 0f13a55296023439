package devpki_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/fennec-mqtt/fennec/pki/devpki"
)

func TestDevPKIHandshakeWithClientCert(t *testing.T) {
	for _, kt := range []devpki.KeyType{devpki.KeyECDSAP256, devpki.KeyRSA2048, devpki.KeyEd25519} {
		t.Run(kt.String(), func(t *testing.T) {
			p, err := devpki.Generate(devpki.Options{KeyType: kt})
			if err != nil {
				t.Fatal(err)
			}
			files, err := p.WriteDir(filepath.Join(t.TempDir(), "pki"))
			if err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(files.ServerKey)
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("server key mode = %v, %v; want 0600", st.Mode().Perm(), err)
			}
			loaded, _, err := devpki.LoadDir(files.Dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AddCert(loaded.CA.Cert)
			srvCert, _ := tls.X509KeyPair(loaded.Server.CertPEM, loaded.Server.KeyPEM)
			cliCert, _ := tls.X509KeyPair(loaded.Client().CertPEM, loaded.Client().KeyPEM)
			l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
				Certificates: []tls.Certificate{srvCert}, ClientCAs: pool,
				ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			got := make(chan string, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					got <- err.Error()
					return
				}
				defer c.Close()
				tc := c.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					got <- err.Error()
					return
				}
				got <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
				io.Copy(io.Discard, c)
			}()
			c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{
				RootCAs: pool, ServerName: "localhost", Certificates: []tls.Certificate{cliCert},
			})
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			if cn := <-got; cn != "fennec-client" {
				t.Fatalf("server saw client %q", cn)
			}
		})
	}
}
