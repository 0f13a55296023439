package emu

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"os"

	"github.com/fennec-mqtt/fennec/awsiot"
	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/pki"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

// Policy is the AWS IoT policy attached to every device certificate of the emulation.
const Policy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}*"},
 {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "arn:aws:iot:us-east-1:123456789012:topic/$aws/things/${iot:Connection.Thing.ThingName}/*"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:us-east-1:123456789012:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/*"}
]}`

// Emulator is a running emulation.
type Emulator struct {
	*broker.Broker
	Files    devpki.Files // the PKI's files: CA, device certificates and keys
	Endpoint string       // host:port of the TLS listener
}

// Start starts an emulation on 127.0.0.1 (a free port) for things, with the PKI in dir.
// Extra holds jobs and streams to serve.
func Start(ctx context.Context, dir string, things []string, extra broker.AWS) (*Emulator, error) {
	p, err := devpki.Generate(devpki.Options{Clients: things})
	if err != nil {
		return nil, err
	}
	files, err := p.WriteDir(dir)
	if err != nil {
		return nil, err
	}
	pol, err := broker.ParsePolicy([]byte(Policy))
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(p.Server.CertPEM, p.Server.KeyPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.CA.Cert)
	aws := extra
	aws.Policy = pol
	for _, t := range things {
		aws.Devices = append(aws.Devices, broker.Device{ThingName: t, Certificate: p.Clients[t].Cert})
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("EMU_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	b, err := broker.New(broker.Options{Logger: log, AWS: &aws, Listeners: []broker.Listener{
		{URL: "tls://127.0.0.1:0", TLS: &broker.TLS{Certificate: &cert, ClientCAs: pool}}}})
	if err != nil {
		return nil, err
	}
	if err := b.Start(ctx); err != nil {
		return nil, err
	}
	return &Emulator{Broker: b, Files: files, Endpoint: b.Listeners()[0].Addr}, nil
}

// Config returns the awsiot configuration of thing against the emulation: its certificate and
// key, the development CA instead of the Amazon roots, and "localhost", the name in the
// emulation's server certificate.
func (e *Emulator) Config(thing string) awsiot.Config {
	return awsiot.Config{Endpoint: e.Endpoint, ThingName: thing, ServerName: "localhost",
		Cert: pki.FileSource(e.Files.ClientCert[thing]), Key: pki.FileSource(e.Files.ClientKey[thing]),
		RootCAs: []pki.Source{pki.FileSource(e.Files.CA)}}
}
