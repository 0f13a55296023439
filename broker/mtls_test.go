package broker_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/pki/devpki"
	"go.uber.org/goleak"
)

// mosquitto_sub and mosquitto_pub, with their client certificate, over TLS 1.3: a round trip.
func TestMosquittoRoundTripTLS13ClientCert(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	sub := startCmd(t, "mosquitto_sub", append(tlsArgs(b, b.ClientCert, b.ClientKey),
		"-i", "sub-1", "-t", "fennec/test", "-C", "1", "-q", "1", "-V", "mqttv311")...)
	waitFor(t, "mosquitto_sub's subscription", subscribed(b, "sub-1", 1))
	pub := run(t, "mosquitto_pub", append(tlsArgs(b, b.ClientCert, b.ClientKey),
		"-i", "pub-1", "-t", "fennec/test", "-m", "hello over TLS 1.3", "-q", "1", "-V", "mqttv5")...)
	if pub.err != nil {
		t.Fatalf("mosquitto_pub: %v\n%s", pub.err, pub.out)
	}
	r := sub.wait()
	if r.err != nil {
		t.Fatalf("mosquitto_sub: %v\n%s", r.err, r.out)
	}
	if got := strings.TrimSpace(r.out); got != "hello over TLS 1.3" {
		t.Fatalf("mosquitto_sub received %q", got)
	}
}

// A client without a certificate is refused by the mutual-TLS listener.
func TestMosquittoWithoutClientCertRefused(t *testing.T) {
	logs := &lockedBuffer{}
	b := brokertest.Start(t, brokertest.Options{LogCopy: logs})
	r := run(t, "mosquitto_pub", append(tlsArgs(b, "", ""), "-i", "nocert", "-t", "x", "-m", "y")...)
	if r.code == 0 {
		t.Fatalf("mosquitto_pub without certificate succeeded:\n%s", r.out)
	}
	if _, ok := b.Server().Clients.Get("nocert"); ok {
		t.Fatal("the client without certificate became an MQTT client")
	}
	expectHandshakeRefused(t, logs, "didn't provide a certificate")
}

// expectHandshakeRefused asserts that the broker logged a failed TLS handshake for the cause
// given (an error text of crypto/tls), so that a refusal for another reason does not pass.
func expectHandshakeRefused(t *testing.T, logs *lockedBuffer, cause string) {
	t.Helper()
	// The client may see the alert before the broker has written its log line.
	waitLogLines(t, logs, 1, "TLS handshake failed", cause)
}

// A client whose certificate comes from another CA is refused.
func TestMosquittoForeignCARefused(t *testing.T) {
	logs := &lockedBuffer{}
	b := brokertest.Start(t, brokertest.Options{LogCopy: logs})
	other, err := devpki.Generate(devpki.Options{Clients: []string{"intruder"}})
	if err != nil {
		t.Fatal(err)
	}
	files, err := other.WriteDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, key := files.FirstClient(other)
	r := run(t, "mosquitto_pub", append(tlsArgs(b, cert, key), "-i", "intruder", "-t", "x", "-m", "y")...)
	if r.code == 0 {
		t.Fatalf("mosquitto_pub with a foreign certificate succeeded:\n%s", r.out)
	}
	if _, ok := b.Server().Clients.Get("intruder"); ok {
		t.Fatal("the client with a foreign certificate became an MQTT client")
	}
	expectHandshakeRefused(t, logs, "certificate signed by unknown authority")
}

// TLS 1.2 is refused by the default listener and accepted when allowed; TLS 1.1 never is.
func TestTLSVersions(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	cfg := b.ClientTLSConfig("fennec-client")
	cfg.MaxVersion = tls.VersionTLS12
	if err := handshake(b.TLSAddr, cfg); err == nil {
		t.Fatal("TLS 1.2 handshake succeeded against a TLS 1.3 listener")
	}
	b12 := brokertest.Start(t, brokertest.Options{TLSMinVersion: tls.VersionTLS12})
	cfg12 := b12.ClientTLSConfig("fennec-client")
	cfg12.MaxVersion = tls.VersionTLS12
	if err := handshake(b12.TLSAddr, cfg12); err != nil {
		t.Fatalf("TLS 1.2 handshake against a TLS 1.2 listener: %v", err)
	}
	// A client that offers only TLS 1.0 and 1.1 is refused even by the TLS 1.2 listener.
	old := b12.ClientTLSConfig("fennec-client")
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if err := handshake(b12.TLSAddr, old); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("TLS 1.1 handshake against a TLS 1.2 listener: %v, want a protocol version alert", err)
	}
	_, err := broker.New(broker.Options{Listeners: []broker.Listener{{URL: "tls://127.0.0.1:0",
		TLS: &broker.TLS{CertFile: b.Files.ServerCert, KeyFile: b.Files.ServerKey, MinVersion: tls.VersionTLS11}}}})
	if err == nil || !strings.Contains(err.Error(), "TLS 1.1 refused") {
		t.Fatalf("New with a TLS 1.1 minimum: %v, want a refusal naming TLS 1.1", err)
	}
}

// handshake completes a TLS handshake and one read, which is where a TLS 1.3 client learns of a
// refused certificate.
func handshake(addr string, cfg *tls.Config) error {
	d := tls.Dialer{Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	// An MQTT 3.1.1 CONNECT; a CONNACK proves the session works.
	if _, err := c.Write(connect311("tls-probe", 60)); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if buf[0] != 0x20 || buf[3] != 0 {
		return errors.New("no successful CONNACK")
	}
	return nil
}

// The plain, WebSocket and secure WebSocket listeners all serve MQTT, and Close leaves nothing
// behind (TestMain checks goroutines).
func TestListenersAndClose(t *testing.T) {
	before := goleak.IgnoreCurrent()
	b := brokertest.Start(t, brokertest.Options{WebSockets: true})
	for _, l := range b.Listeners() {
		if _, port, _ := net.SplitHostPort(l.Addr); port == "0" || port == "" {
			t.Fatalf("listener %s has no port: %q", l.Name, l.Addr)
		}
	}
	// tcp
	c, err := net.Dial("tcp", b.TCPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ack := connectRaw(t, c, connect311("plain", 60)); ack[3] != 0 {
		t.Fatalf("CONNACK return code %#x", ack[3])
	}
	// ws and wss, through mosquitto's WebSocket support is not built into the Debian clients, so a
	// minimal WebSocket client speaks here.
	for _, tc := range []struct {
		addr string
		tls  *tls.Config
	}{{b.WSAddr, nil}, {b.WSSAddr, b.ClientTLSConfig("fennec-client")}} {
		ws := dialWS(t, tc.addr, tc.tls)
		if ack := connectRaw(t, ws, connect311("ws-client", 60)); ack[3] != 0 {
			t.Fatalf("CONNACK over websocket: %#x", ack[3])
		}
		ws.Close()
	}
	// wss requires the client certificate like tls.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: b.ClientTLSConfig("")}}
	defer noCert.CloseIdleConnections()
	if _, _, err := websocket.Dial(ctx, "wss://"+b.WSSAddr+"/mqtt", &websocket.DialOptions{
		Subprotocols: []string{"mqtt"}, HTTPClient: noCert}); err == nil {
		t.Fatal("wss without client certificate upgraded")
	}
	// A connection that never sends CONNECT must not keep Close waiting.
	idle, err := net.Dial("tcp", b.TCPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", b.TCPAddr); err == nil {
		t.Fatal("listener still accepts after Close")
	}
	expectClosed(t, c)
	expectClosed(t, idle)
	// Nothing the broker started is left running (the client side's idle connections closed
	// first).
	noCert.CloseIdleConnections()
	goleak.VerifyNone(t, before)
}

// A Start that fails on its second listener closes the first again: nothing stays open.
func TestStartFailureClosesListeners(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()
	b, err := broker.New(broker.Options{Listeners: []broker.Listener{{URL: "tcp://" + freeAddr}, {URL: "tcp://" + busy.Addr().String()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Start on a busy port: %v, want the port's error", err)
	}
	again, err := net.Listen("tcp", freeAddr)
	if err != nil {
		t.Fatalf("the first listener's port is still held after the failed Start: %v", err)
	}
	again.Close()
}

// Start runs once; Close may come before Start and more than once.
func TestStartAndCloseOrder(t *testing.T) {
	b, err := broker.New(broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b.Addr() != "" {
		t.Fatalf("address before Start: %q", b.Addr())
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); !errors.Is(err, broker.ErrStarted) {
		t.Fatalf("second Start: %v, want ErrStarted", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.Start(context.Background()); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Start after Close: %v, want ErrClosed", err)
	}
	unstarted, err := broker.New(broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstarted.Close(); err != nil {
		t.Fatalf("Close before Start: %v", err)
	}
}
