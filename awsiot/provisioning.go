package awsiot

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"sync"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// Provisioner is Fleet Provisioning by claim: a device connected with a claim certificate gets
// its own certificate and registers its thing, over MQTT. The API's answers carry no client
// token, so a Provisioner sends one request at a time.
// Topics and messages: https://docs.aws.amazon.com/iot/latest/developerguide/fleet-provision-api.html
type Provisioner struct {
	c MQTT

	mu     sync.Mutex // one request at a time
	subbed map[string]bool
	answer chan answer
}

// NewProvisioner returns the Fleet Provisioning API over c (connected with the claim
// certificate).
func NewProvisioner(c MQTT) *Provisioner {
	return &Provisioner{c: c, subbed: map[string]bool{}, answer: make(chan answer, 1)}
}

// NewCertificate is a certificate Fleet Provisioning created: its ID, PEM, private key (none
// when it was made from a CSR: the key stayed with the device) and the ownership token
// RegisterThing takes.
type NewCertificate struct {
	ID             string `json:"certificateId"`
	CertificatePEM string `json:"certificatePem"`
	PrivateKeyPEM  string `json:"privateKey,omitempty"`
	OwnershipToken string `json:"certificateOwnershipToken"`
}

// Registration is what RegisterThing answers: the thing's name and the template's device
// configuration.
type Registration struct {
	ThingName           string            `json:"thingName"`
	DeviceConfiguration map[string]string `json:"deviceConfiguration"`
}

// ProvisioningError is a rejected Fleet Provisioning request.
type ProvisioningError struct {
	Op         string
	StatusCode int    `json:"statusCode"`
	ErrorCode  string `json:"errorCode"`
	Message    string `json:"errorMessage"`
}

func (e *ProvisioningError) Error() string {
	return fmt.Sprintf("awsiot: provisioning %s rejected: %d %s: %s", e.Op, e.StatusCode, e.ErrorCode, e.Message)
}

// CreateKeysAndCertificate has AWS create a key pair and a certificate.
func (p *Provisioner) CreateKeysAndCertificate(ctx context.Context) (*NewCertificate, error) {
	var nc NewCertificate
	if err := p.request(ctx, "CreateKeysAndCertificate", "$aws/certificates/create/json", map[string]any{}, &nc); err != nil {
		return nil, err
	}
	return &nc, nil
}

// CreateCertificateFromCSR has AWS sign a certificate for csrPEM's key.
func (p *Provisioner) CreateCertificateFromCSR(ctx context.Context, csrPEM []byte) (*NewCertificate, error) {
	var nc NewCertificate
	if err := p.request(ctx, "CreateCertificateFromCsr", "$aws/certificates/create-from-csr/json", map[string]any{"certificateSigningRequest": string(csrPEM)}, &nc); err != nil {
		return nil, err
	}
	return &nc, nil
}

// RegisterThing registers the thing of template with the certificate whose ownership token is
// given, and the template's parameters.
func (p *Provisioner) RegisterThing(ctx context.Context, template, ownershipToken string, params map[string]string) (*Registration, error) {
	if params == nil {
		params = map[string]string{}
	}
	var r Registration
	if err := p.request(ctx, "RegisterThing", "$aws/provisioning-templates/"+template+"/provision/json",
		map[string]any{"certificateOwnershipToken": ownershipToken, "parameters": params}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Provisioned is the result of Provision: the thing, its certificate and key (PEM).
type Provisioned struct {
	Registration
	CertificateID  string
	CertificatePEM []byte
	PrivateKeyPEM  []byte
}

// Provision runs the whole flow: a key pair made here (ECDSA P-256) and a certificate from its
// CSR, so the private key never crosses the network, or with fromAWS, a key pair made by AWS
// (CreateKeysAndCertificate); then RegisterThing. Write the key with pki.WriteFile (0600,
// temporary file and rename) before connecting with it.
func (p *Provisioner) Provision(ctx context.Context, template string, params map[string]string, fromAWS bool) (*Provisioned, error) {
	var nc *NewCertificate
	var keyPEM []byte
	var err error
	if fromAWS {
		if nc, err = p.CreateKeysAndCertificate(ctx); err != nil {
			return nil, err
		}
		keyPEM = []byte(nc.PrivateKeyPEM)
	} else {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "AWS IoT Certificate"}}, key)
		if err != nil {
			return nil, err
		}
		if nc, err = p.CreateCertificateFromCSR(ctx, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})); err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	reg, err := p.RegisterThing(ctx, template, nc.OwnershipToken, params)
	if err != nil {
		return nil, err
	}
	return &Provisioned{Registration: *reg, CertificateID: nc.ID, CertificatePEM: []byte(nc.CertificatePEM), PrivateKeyPEM: keyPEM}, nil
}

func (p *Provisioner) request(ctx context.Context, op, topic string, req map[string]any, out any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, kind := range []string{"accepted", "rejected"} {
		f := topic + "/" + kind
		if p.subbed[f] {
			continue
		}
		accepted := kind == "accepted"
		if _, err := p.c.Subscribe(ctx, func(m *fennec.Message) {
			select {
			case p.answer <- answer{accepted, append([]byte(nil), m.Payload...)}:
			default: // no request waiting, or a duplicate
			}
		}, packet.Subscription{Filter: f, QoS: 1}); err != nil {
			return fmt.Errorf("awsiot: provisioning %s: %w", op, err)
		}
		p.subbed[f] = true
	}
	select { // an answer left from a request that timed out is not this one's
	case <-p.answer:
	default:
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if err := p.c.Publish(ctx, &fennec.Message{Topic: topic, QoS: 1, Payload: b}); err != nil {
		return fmt.Errorf("awsiot: provisioning %s: %w", op, err)
	}
	select {
	case a := <-p.answer:
		if !a.accepted {
			e := &ProvisioningError{}
			if json.Unmarshal(a.payload, e) != nil {
				return fmt.Errorf("awsiot: provisioning %s rejected with an answer that is not JSON: %q", op, a.payload)
			}
			e.Op = op
			return e
		}
		if err := json.Unmarshal(a.payload, out); err != nil {
			return fmt.Errorf("awsiot: provisioning %s: accepted answer: %w", op, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("awsiot: provisioning %s: no answer on %s/accepted or /rejected: %w (the claim certificate's policy must allow iot:Subscribe and iot:Receive on them)", op, topic, ctx.Err())
	}
}
