package broker

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/fennec-mqtt/fennec/pki/devpki"
	"github.com/fennec-mqtt/fennec/topic"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Fleet Provisioning by claim in the AWS emulation: a device connected with a claim certificate
// asks for a certificate (CreateKeysAndCertificate, or CreateCertificateFromCsr for a key that
// never leaves it), then registers a thing with a provisioning template (RegisterThing) and the
// certificate's ownership token. The new certificate is issued by AWS.Issuer and registered for
// the thing, so the device connects with it as that thing.
// Source: "Device provisioning MQTT API".
const awsDocProvisioning = "https://docs.aws.amazon.com/iot/latest/developerguide/fleet-provision-api.html"

// ProvisioningTemplate is a provisioning template of the emulation: the parameters a device
// must send and the thing name made of them ("sensor-{SerialNumber}").
type ProvisioningTemplate struct {
	Name                string
	ThingName           string
	Parameters          []string
	DeviceConfiguration map[string]string
}

// Bounds of the provisioning service: ownership tokens outstanding and their lifetime
// (emulation choices; AWS states neither on the page cited).
const (
	ProvisioningMaxPending = 256
	ProvisioningTokenTTL   = 5 * time.Minute
)

var (
	templateName    = regexp.MustCompile(`^[0-9A-Za-z_-]{1,36}$`)
	provisionTopic  = regexp.MustCompile(`^\$aws/provisioning-templates/([0-9A-Za-z_-]{1,36})/provision/json$`)
	templateParam   = regexp.MustCompile(`\{([A-Za-z0-9_]+)\}`)
	thingNameSyntax = regexp.MustCompile(`^[a-zA-Z0-9:_-]{1,128}$`)
)

type provisioning struct {
	b         *Broker
	issuer    *devpki.Issued
	templates map[string]ProvisioningTemplate
	reg       *registry
	now       func() time.Time

	mu      sync.Mutex
	pending map[string]pendingCert // ownership token → certificate
}

type pendingCert struct {
	fp      [32]byte
	expires time.Time
}

func newProvisioning(b *Broker, a *AWS) (*provisioning, error) {
	p := &provisioning{b: b, issuer: a.Issuer, templates: map[string]ProvisioningTemplate{}, reg: a.reg, now: time.Now, pending: map[string]pendingCert{}}
	for _, t := range a.Templates {
		if !templateName.MatchString(t.Name) {
			return nil, fmt.Errorf("broker: provisioning template name %q: 1 to 36 of 0-9, A-Z, a-z, '-' and '_'", t.Name)
		}
		if t.ThingName == "" {
			return nil, fmt.Errorf("broker: provisioning template %s has no thing name", t.Name)
		}
		p.templates[t.Name] = t
	}
	return p, nil
}

func (p *provisioning) start(srv *mqtt.Server) error {
	for i, f := range []string{"$aws/certificates/+/json", "$aws/provisioning-templates/+/provision/json"} {
		if err := srv.Subscribe(f, 9300+i, p.handle); err != nil {
			return fmt.Errorf("broker: fleet provisioning: %w", err)
		}
	}
	return nil
}

func (p *provisioning) handle(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
	// The handler is given the broker's inline client; the requester is the packet's origin.
	cl, ok := p.b.srv.Clients.Get(pk.Origin)
	if !ok {
		return
	}
	var answer string
	var v map[string]any
	switch {
	case pk.TopicName == "$aws/certificates/create/json":
		answer, v = p.create(nil, pk.Payload)
	case pk.TopicName == "$aws/certificates/create-from-csr/json":
		answer, v = p.create(pk.Payload, nil)
	default:
		m := provisionTopic.FindStringSubmatch(pk.TopicName)
		if m == nil {
			return // an answer topic
		}
		answer, v = p.register(m[1], pk.Payload)
	}
	// The answer goes to the requesting connection only: it may hold a private key.
	p.b.answerOne(cl, pk.TopicName+"/"+answer, mustJSON(v))
}

func provisioningError(status int, code, msg string) (string, map[string]any) {
	return "rejected", map[string]any{"statusCode": status, "errorCode": code, "errorMessage": msg}
}

// create issues a certificate: for the CSR in csrReq, or with a new key pair.
func (p *provisioning) create(csrReq, _ []byte) (string, map[string]any) {
	if len(csrReq) > 16*1024 {
		return provisioningError(400, "InvalidPayload", "the request is larger than 16 KB")
	}
	spec := devpki.CertSpec{Client: true, KeyType: devpki.KeyECDSAP256}
	var iss *devpki.Issued
	var err error
	if csrReq != nil {
		var req struct {
			CSR string `json:"certificateSigningRequest"`
		}
		if json.Unmarshal(csrReq, &req) != nil || req.CSR == "" {
			return provisioningError(400, "InvalidPayload", "certificateSigningRequest is required: a PEM certificate signing request")
		}
		blk, _ := pem.Decode([]byte(req.CSR))
		if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
			return provisioningError(400, "InvalidCsr", "certificateSigningRequest is not a PEM CERTIFICATE REQUEST")
		}
		csr, perr := x509.ParseCertificateRequest(blk.Bytes)
		if perr != nil {
			return provisioningError(400, "InvalidCsr", perr.Error())
		}
		spec.CommonName = csr.Subject.CommonName
		iss, err = devpki.IssueFromCSR(spec, csr, p.issuer)
	} else {
		spec.CommonName = "AWS IoT Certificate"
		iss, err = devpki.Issue(spec, p.issuer)
	}
	if err != nil {
		return provisioningError(400, "InvalidCsr", err.Error())
	}
	fp := sha256.Sum256(iss.Cert.Raw)
	var tb [32]byte
	rand.Read(tb[:])
	token := hex.EncodeToString(tb[:])
	p.mu.Lock()
	now := p.now()
	for t, pc := range p.pending {
		if now.After(pc.expires) {
			delete(p.pending, t)
		}
	}
	if len(p.pending) >= ProvisioningMaxPending {
		p.mu.Unlock()
		return provisioningError(429, "Throttling", "too many certificates waiting for RegisterThing")
	}
	p.pending[token] = pendingCert{fp: fp, expires: now.Add(ProvisioningTokenTTL)}
	p.mu.Unlock()
	v := map[string]any{"certificateId": hex.EncodeToString(fp[:]), "certificatePem": string(iss.CertPEM), "certificateOwnershipToken": token}
	if iss.KeyPEM != nil {
		v["privateKey"] = string(iss.KeyPEM)
	}
	p.b.log.Info("fleet provisioning: certificate created", "certificate_id", hex.EncodeToString(fp[:]), "from_csr", csrReq != nil, "aws_doc", awsDocProvisioning)
	return "accepted", v
}

// register runs RegisterThing with template name.
func (p *provisioning) register(name string, payload []byte) (string, map[string]any) {
	var req struct {
		Token      string            `json:"certificateOwnershipToken"`
		Parameters map[string]string `json:"parameters"`
	}
	if len(payload) > 16*1024 || json.Unmarshal(payload, &req) != nil {
		return provisioningError(400, "InvalidPayload", "the request is not a JSON object of at most 16 KB with string parameters")
	}
	t, ok := p.templates[name]
	if !ok {
		return provisioningError(404, "NotFound", "no provisioning template "+name)
	}
	p.mu.Lock()
	pc, ok := p.pending[req.Token]
	if ok && p.now().After(pc.expires) {
		delete(p.pending, req.Token)
		ok = false
	}
	p.mu.Unlock()
	if !ok {
		return provisioningError(400, "InvalidCertificateOwnershipToken", "the certificate ownership token is unknown, used or expired")
	}
	for _, param := range t.Parameters {
		if req.Parameters[param] == "" {
			return provisioningError(400, "InvalidParameters", "the template needs the parameter "+param)
		}
	}
	var missing string
	thing := templateParam.ReplaceAllStringFunc(t.ThingName, func(m string) string {
		v, ok := req.Parameters[m[1:len(m)-1]]
		if !ok {
			missing = m
		}
		return v
	})
	if missing != "" || !thingNameSyntax.MatchString(thing) {
		return provisioningError(400, "InvalidParameters", fmt.Sprintf("the thing name %q made from the template is not valid", thing))
	}
	p.mu.Lock()
	delete(p.pending, req.Token) // one use
	p.mu.Unlock()
	p.reg.add(pc.fp, thing)
	p.b.log.Info("fleet provisioning: thing registered", "thing", thing, "template", name, "certificate_id", hex.EncodeToString(pc.fp[:]), "aws_doc", awsDocProvisioning)
	cfg := map[string]string{}
	for k, v := range t.DeviceConfiguration {
		cfg[k] = v
	}
	return "accepted", map[string]any{"thingName": thing, "deviceConfiguration": cfg}
}

// answerOne publishes, at QoS 0, to one connection, when it holds a subscription that matches
// topic and the policy lets it receive the topic.
func (b *Broker) answerOne(cl *mqtt.Client, topicName string, payload []byte) {
	subscribed := false
	for f := range cl.State.Subscriptions.GetAll() {
		if topic.Match(f, topicName) {
			subscribed = true
			break
		}
	}
	if !subscribed || !b.hook.OnACLCheck(cl, topicName, false) {
		b.log.Info("answer not delivered: the requester is not subscribed to it or may not receive it", "client", cl.ID, "topic", topicName)
		return
	}
	if err := cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: topicName, Payload: payload}); err != nil {
		b.log.Warn("answer not delivered", "client", cl.ID, "topic", topicName, "error", err)
	}
}
