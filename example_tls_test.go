package fennec_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"log/slog"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/pki"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

// A device on MQTT 5 over TLS 1.3 with mutual TLS: it trusts the broker's CA, presents its own
// certificate, subscribes and publishes. The broker here is the embedded one with a development
// PKI made on the spot; against a real broker, give the files instead of bytes
// (pki.FileSource("ca.pem"), ...) and its mqtts:// URL.
func ExampleConnect_mutualTLS() {
	// the broker side, for the example to run on its own
	dev, err := devpki.Generate(devpki.Options{Clients: []string{"sensor-1"}})
	if err != nil {
		log.Fatal(err)
	}
	srvCert, _ := tls.X509KeyPair(dev.Server.CertPEM, dev.Server.KeyPEM)
	cas := x509.NewCertPool()
	cas.AddCert(dev.CA.Cert)
	b, err := broker.New(broker.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Listeners: []broker.Listener{{URL: "tls://127.0.0.1:0",
		TLS: &broker.TLS{Certificate: &srvCert, ClientCAs: cas, RequireClientCert: true, MinVersion: tls.VersionTLS13}}}})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	// the device side
	tlsConfig, err := pki.ClientConfig(pki.ClientOptions{
		CAs:        []pki.Source{pki.BytesSource(dev.CA.CertPEM, "ca.pem")},
		Cert:       pki.BytesSource(dev.Clients["sensor-1"].CertPEM, "sensor-1.pem"),
		Key:        pki.BytesSource(dev.Clients["sensor-1"].KeyPEM, "sensor-1-key.pem"),
		MinVersion: tls.VersionTLS13,
		ServerName: "localhost", // the name in the broker's certificate
	})
	if err != nil {
		log.Fatal(err)
	}
	c, err := fennec.Connect(ctx, fennec.Config{Server: "mqtts://" + b.Listeners()[0].Addr, ClientID: "sensor-1", TLSConfig: tlsConfig})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	got := make(chan *fennec.Message, 1)
	if _, err := c.Subscribe(ctx, func(m *fennec.Message) { got <- m }, packet.Subscription{Filter: "sensors/1/#", QoS: 1}); err != nil {
		log.Fatal(err)
	}
	if err := c.Publish(ctx, &fennec.Message{Topic: "sensors/1/temp", QoS: 1, Payload: []byte("21.5")}); err != nil {
		log.Fatal(err)
	}
	m := <-got
	st, _ := c.ConnectionState()
	fmt.Printf("%s %s over %s\n", m.Topic, m.Payload, tls.VersionName(st.Version))
	// Output: sensors/1/temp 21.5 over TLS 1.3
}
