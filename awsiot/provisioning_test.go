package awsiot_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/awsiot"
	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/pki"
)

// claimPolicy lets a claim certificate connect and use the provisioning topics, and every
// thing use its own topics.
const claimPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:us-east-1:123456789012:client/*"},
 {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/$aws/certificates/create/*", "arn:aws:iot:us-east-1:123456789012:topic/$aws/certificates/create-from-csr/*", "arn:aws:iot:us-east-1:123456789012:topic/$aws/provisioning-templates/*"]},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": ["arn:aws:iot:us-east-1:123456789012:topicfilter/$aws/certificates/*", "arn:aws:iot:us-east-1:123456789012:topicfilter/$aws/provisioning-templates/*"]},
 {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "arn:aws:iot:us-east-1:123456789012:topic/$aws/things/${iot:Connection.Thing.ThingName}/*"},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:us-east-1:123456789012:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/*"}
]}`

// Fleet Provisioning by claim against the emulation: with a key made on the device (CSR) and
// with one made by the service; the new certificate connects as the registered thing and uses
// its shadow; an answer holding a private key reaches the requester only; an unregistered
// certificate cannot connect; tokens are single use; templates check their parameters.
func TestFleetProvisioning(t *testing.T) {
	pol, err := broker.ParsePolicy([]byte(claimPolicy))
	if err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, brokertest.Options{Clients: []string{"claim"}, FleetProvisioning: true, AWS: &broker.AWS{Policy: pol,
		Templates: []broker.ProvisioningTemplate{{Name: "fleet", ThingName: "sensor-{SerialNumber}", Parameters: []string{"SerialNumber"}, DeviceConfiguration: map[string]string{"interval": "60"}}}}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	claimAs := func(id string) *awsiot.Client {
		cfg := awsiot.Config{Endpoint: b.TLSAddr, ClientID: id, ServerName: "localhost", RootCAs: []pki.Source{pki.FileSource(b.CAFile)},
			Cert: pki.FileSource(b.Files.ClientCert["claim"]), Key: pki.FileSource(b.Files.ClientKey["claim"]), Base: fennec.Config{DisableReconnect: true}}
		c, err := awsiot.Connect(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Disconnect(context.Background()) })
		return c
	}
	// another claimer listens to every answer it may subscribe to
	spy := claimAs("claimer-2")
	leaked := make(chan string, 10)
	if _, err := spy.Subscribe(ctx, func(m *fennec.Message) { leaked <- m.Topic }, packet.Subscription{Filter: "$aws/certificates/create/json/accepted", QoS: 1},
		packet.Subscription{Filter: "$aws/certificates/create-from-csr/json/accepted", QoS: 1}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	for i, fromAWS := range []bool{false, true} {
		prov := awsiot.NewProvisioner(claimAs("claimer-1"))
		serial := []string{"1001", "1002"}[i]
		res, err := prov.Provision(ctx, "fleet", map[string]string{"SerialNumber": serial}, fromAWS)
		if err != nil {
			t.Fatalf("fromAWS %v: %v", fromAWS, err)
		}
		if res.ThingName != "sensor-"+serial || res.DeviceConfiguration["interval"] != "60" || len(res.CertificateID) != 64 {
			t.Fatalf("registration %+v", res.Registration)
		}
		certFile, keyFile := filepath.Join(dir, res.ThingName+".pem"), filepath.Join(dir, res.ThingName+"-key.pem")
		if err := pki.WriteFile(certFile, res.CertificatePEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := pki.WriteFile(keyFile, res.PrivateKeyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		dev, err := awsiot.Connect(ctx, awsiot.Config{Endpoint: b.TLSAddr, ThingName: res.ThingName, ServerName: "localhost", RootCAs: []pki.Source{pki.FileSource(b.CAFile)},
			Cert: pki.FileSource(certFile), Key: pki.FileSource(keyFile), Base: fennec.Config{DisableReconnect: true}})
		if err != nil {
			t.Fatalf("connecting with the provisioned certificate: %v", err)
		}
		if _, err := awsiot.NewShadow(dev, res.ThingName, "").Update(ctx, awsiot.Update{Reported: map[string]any{"provisioned": true}}); err != nil {
			t.Fatalf("the provisioned thing's shadow: %v", err)
		}
		dev.Disconnect(ctx)
	}
	select {
	case topic := <-leaked:
		t.Fatalf("another claimer received %s", topic)
	case <-time.After(200 * time.Millisecond):
	}

	prov := awsiot.NewProvisioner(claimAs("claimer-3"))
	nc, err := prov.CreateKeysAndCertificate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pe *awsiot.ProvisioningError
	if _, err := prov.RegisterThing(ctx, "fleet", nc.OwnershipToken, nil); !errors.As(err, &pe) || pe.ErrorCode != "InvalidParameters" {
		t.Fatalf("no SerialNumber: %v", err)
	}
	if _, err := prov.RegisterThing(ctx, "nope", nc.OwnershipToken, map[string]string{"SerialNumber": "9"}); !errors.As(err, &pe) || pe.StatusCode != 404 {
		t.Fatalf("unknown template: %v", err)
	}
	// not registered yet: the certificate is not a device's
	certFile, keyFile := filepath.Join(dir, "u.pem"), filepath.Join(dir, "u-key.pem")
	pki.WriteFile(certFile, []byte(nc.CertificatePEM), 0o644)
	pki.WriteFile(keyFile, []byte(nc.PrivateKeyPEM), 0o600)
	if _, err := awsiot.Connect(ctx, awsiot.Config{Endpoint: b.TLSAddr, ThingName: "sensor-9", ServerName: "localhost", RootCAs: []pki.Source{pki.FileSource(b.CAFile)},
		Cert: pki.FileSource(certFile), Key: pki.FileSource(keyFile), Base: fennec.Config{DisableReconnect: true}}); err == nil {
		t.Fatal("an unregistered certificate connected")
	}
	if _, err := prov.RegisterThing(ctx, "fleet", nc.OwnershipToken, map[string]string{"SerialNumber": "9"}); err != nil {
		t.Fatal(err)
	}
	if _, err := prov.RegisterThing(ctx, "fleet", nc.OwnershipToken, map[string]string{"SerialNumber": "10"}); !errors.As(err, &pe) || pe.ErrorCode != "InvalidCertificateOwnershipToken" {
		t.Fatalf("a token used twice: %v", err)
	}
	if _, err := prov.CreateCertificateFromCSR(ctx, []byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")); !errors.As(err, &pe) || !strings.Contains(pe.ErrorCode, "Csr") {
		t.Fatalf("a broken CSR: %v", err)
	}
}
