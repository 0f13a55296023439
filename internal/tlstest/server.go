package tlstest

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/pki"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

// Server is a real crypto/tls server on loopback: it completes the handshake, writes
// "hello" and waits for the client to close.
type Server struct {
	Addr string
	Errs chan error // one per connection: the server's handshake result
}

func StartServer(t testing.TB, cfg *tls.Config) *Server {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: l.Addr().String(), Errs: make(chan error, 16)}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				c.SetDeadline(time.Now().Add(30 * time.Second))
				err := tc.Handshake()
				select {
				case s.Errs <- err:
				default: // nobody reads them: a test that does reads the first few
				}
				if err != nil {
					return
				}
				tc.Write([]byte("hello"))
				io.Copy(io.Discard, tc)
			}()
		}
	}()
	return s
}

// ServerConfig builds a server config for srv that requires client certificates from
// clientCA when it is set.
func ServerConfig(t testing.TB, srv *devpki.Issued, clientCA *devpki.Issued, min, max uint16) *tls.Config {
	t.Helper()
	opts := pki.ServerOptions{Cert: pki.BytesSource(srv.CertPEM, "server.pem"), Key: pki.BytesSource(srv.KeyPEM, "server-key.pem"), MinVersion: min, MaxVersion: max}
	if clientCA != nil {
		opts.ClientCAs = []pki.Source{pki.BytesSource(clientCA.CertPEM, "ca.pem")}
	}
	cfg, err := pki.ServerConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// ClientSetup says what ClientConfig puts in a client config.
type ClientSetup struct {
	CA     *devpki.Issued
	Client *devpki.Issued
	Min    uint16
	Max    uint16
	Name   string
}

// ClientConfig builds a client config with a recorder.
func ClientConfig(t testing.TB, s ClientSetup) (*tls.Config, *pki.HandshakeRecorder) {
	t.Helper()
	rec := &pki.HandshakeRecorder{}
	opts := pki.ClientOptions{MinVersion: s.Min, MaxVersion: s.Max, ServerName: s.Name, Recorder: rec}
	if s.CA != nil {
		opts.CAs = []pki.Source{pki.BytesSource(s.CA.CertPEM, "ca.pem")}
	}
	if s.Client != nil {
		opts.Cert = pki.BytesSource(s.Client.CertPEM, "client.pem")
		opts.Key = pki.BytesSource(s.Client.KeyPEM, "client-key.pem")
	}
	cfg, err := pki.ClientConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, rec
}

// DialAndRead connects, and when the handshake succeeds, reads the first bytes from the server
// (for mosquitto: sends an MQTT CONNECT and reads the CONNACK). It returns the first error.
func DialAndRead(t testing.TB, addr string, cfg *tls.Config, mqtt bool) ([]byte, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 30 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	want := 5
	if mqtt {
		// MQTT 3.1.1 CONNECT, clean session, keepalive 60, empty client identifier [MQTT-3.1.3-6].
		if _, err := c.Write([]byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00}); err != nil {
			return nil, err
		}
		want = 4
	}
	buf := make([]byte, want)
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, err
	}
	return buf, nil
}
