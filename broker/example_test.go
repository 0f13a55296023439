package broker_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log"

	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

// A broker with a plain listener and a TLS 1.3 listener that requires client certificates, on
// free loopback ports.
func ExampleNew() {
	dev, err := devpki.Generate(devpki.Options{})
	if err != nil {
		log.Fatal(err)
	}
	cert, err := tls.X509KeyPair(dev.Server.CertPEM, dev.Server.KeyPEM)
	if err != nil {
		log.Fatal(err)
	}
	cas := x509.NewCertPool()
	cas.AddCert(dev.CA.Cert)
	b, err := broker.New(broker.Options{Listeners: []broker.Listener{
		{URL: "tcp://127.0.0.1:0"},
		{URL: "tls://127.0.0.1:0", TLS: &broker.TLS{Certificate: &cert, ClientCAs: cas, RequireClientCert: true}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	for _, l := range b.Listeners() {
		fmt.Println(l.Name, l.ClientURL()[:8])
	}
	// Output:
	// tcp mqtt://1
	// tls mqtts://
}

// Evaluating an AWS IoT policy the way the emulation does.
func ExampleParsePolicy() {
	p, err := broker.ParsePolicy([]byte(`{
	  "Version": "2012-10-17",
	  "Statement": [
	    {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:us-east-1:123456789012:topic/dt/${iot:ClientId}/*"},
	    {"Effect": "Deny", "Action": "iot:Publish", "Resource": "arn:aws:iot:us-east-1:123456789012:topic/dt/*/secret"}
	  ]
	}`))
	if err != nil {
		log.Fatal(err)
	}
	vars := map[string]string{"iot:ClientId": "sensor-1"}
	arn := func(topic string) string { return "arn:aws:iot:us-east-1:123456789012:topic/" + topic }
	fmt.Println(p.Allowed("iot:Publish", arn("dt/sensor-1/temp"), vars))
	fmt.Println(p.Allowed("iot:Publish", arn("dt/sensor-2/temp"), vars))
	fmt.Println(p.Allowed("iot:Publish", arn("dt/sensor-1/secret"), vars))
	// Output:
	// true
	// false
	// false
}

// Hashing a password for the ACL file.
func ExampleHashPassword() {
	// Zero iterations means PasswordIterations, the right choice for a real ACL file; fewer
	// here keep the example fast.
	h, err := broker.HashPassword("s3cret", 10_000)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(broker.CheckPassword(h, "s3cret"), broker.CheckPassword(h, "guess"))
	// Output: true false
}
