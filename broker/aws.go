package broker

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/fennec-mqtt/fennec/pki/devpki"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// AWS IoT Core documentation this emulation follows. Each behaviour below cites one of them; see
// also docs/aws-emulation.md.
const (
	// "AWS IoT differences from MQTT specifications" (QoS 2, client ID takeover, keep-alive).
	awsDocMQTTDifferences = "https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html#mqtt-differences"
	// "AWS IoT Core message broker and protocol limits and quotas" (topic size, slashes, payload).
	awsDocLimits = "https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits"
	// "AWS IoT Core policy actions" and "Action resources" (iot:Connect … and their ARNs).
	awsDocPolicyActions = "https://docs.aws.amazon.com/iot/latest/developerguide/iot-policy-actions.html"
	// "Basic policy variables" and "Thing policy variables".
	awsDocPolicyVariables = "https://docs.aws.amazon.com/iot/latest/developerguide/thing-policy-variables.html"
	// "MQTT persistent sessions" (stored QoS 1 messages, 1-hour default expiry).
	awsDocPersistentSessions = "https://docs.aws.amazon.com/iot/latest/developerguide/mqtt-persistent-sessions.html"
	// "MQTT reason codes" (0x87 Not authorized on PUBACK/SUBACK for MQTT 5 clients).
	awsDocReasonCodes = "https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html#mqtt5-reason-codes"
)

// Limits of the AWS IoT Core message broker, from awsDocLimits.
const (
	AWSMaxTopicBytes   = 256        // "Topic size": UTF-8 bytes of a topic name or filter
	AWSMaxTopicSlashes = 7          // "Maximum number of slashes in topic and topic filter"
	AWSMaxPayload      = 128 * 1024 // "Message size": 128 KB payload
	AWSMinKeepAlive    = 30         // the keep-alive range is 30–1200 s
	AWSMaxKeepAlive    = 1200
	// AWSSessionExpiry is the default expiry period of a persistent session, in seconds,
	// counted from the disconnection (awsDocPersistentSessions).
	AWSSessionExpiry = 3600
)

// AWS configures the AWS IoT Core emulation. Devices authenticate with registered certificates on
// TLS listeners, a policy in AWS's JSON policy language authorizes iot:Connect, iot:Publish,
// iot:Subscribe and iot:Receive, and the broker behaves like AWS IoT Core where it differs from
// the MQTT specifications (see docs/aws-emulation.md for each behaviour and its source).
type AWS struct {
	// Devices are the registered device certificates and the things they are attached to.
	Devices []Device
	// Policy is the policy attached to every device certificate.
	Policy *Policy
	// Region and Account build the ARNs the policy's resources are matched against; zero:
	// "us-east-1" and "123456789012".
	Region, Account string
	// Jobs are created when the broker starts (more with Broker.CreateJob); their executions
	// are served by the emulation's Jobs service.
	Jobs []Job
	// Streams are files devices download in blocks over MQTT (MQTT-based file delivery).
	Streams []Stream

	// Issuer signs the certificates Fleet Provisioning creates (CreateKeysAndCertificate,
	// CreateCertificateFromCsr); nil: fleet provisioning is off.
	Issuer *devpki.Issued
	// Templates are the provisioning templates RegisterThing accepts.
	Templates []ProvisioningTemplate
	// Authorizers are the custom authorizers devices without a certificate name in their user
	// name.
	Authorizers []Authorizer

	reg *registry
}

// registry maps device certificates (by SHA-256 of their DER) to things; Fleet Provisioning
// adds to it while the broker runs.
type registry struct {
	mu     sync.RWMutex
	things map[[32]byte][]string
}

func (r *registry) lookup(fp [32]byte) ([]string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.things[fp]
	return t, ok
}

func (r *registry) add(fp [32]byte, thing string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.things[fp] {
		if t == thing {
			return
		}
	}
	r.things[fp] = append(r.things[fp], thing)
}

// EmulationProperty is the user property of the AWS emulation's MQTT 5 CONNACK, with the value
// "aws-iot": AWS IoT Core sends none, and clients may read it to explain failures as AWS's.
const EmulationProperty = "fennec-emulation"

// Device is a registered device certificate and the name of the thing it is attached to.
type Device struct {
	ThingName   string
	Certificate *x509.Certificate
}

// LoadDevices reads the device certificates of a directory: every *.pem, *.crt and *.cert file
// (a file may hold several certificates; only the first is the device's). The thing name is the
// file name without its extension and without a "-certificate" or ".cert" suffix, so
// "sensor-1.cert.pem" and "sensor-1-certificate.pem.crt" (the AWS console's download names) both
// register the thing "sensor-1".
func LoadDevices(dir string) ([]Device, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("broker: device certificates: %w", err)
	}
	var out []Device
	for _, e := range entries {
		name := e.Name()
		ext := strings.ToLower(filepath.Ext(name))
		if e.IsDir() || (ext != ".pem" && ext != ".crt" && ext != ".cert") || strings.Contains(strings.ToLower(name), "private") || strings.HasSuffix(strings.ToLower(name), "-key.pem") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("broker: device certificates: %w", err)
		}
		blk, _ := pem.Decode(data)
		if blk == nil || blk.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("broker: device certificate %s: %w", name, err)
		}
		thing := name
		for {
			trimmed := thing
			for _, suf := range []string{".pem", ".crt", ".cert", "-certificate"} {
				trimmed = strings.TrimSuffix(trimmed, suf)
			}
			if trimmed == thing {
				break
			}
			thing = trimmed
		}
		out = append(out, Device{ThingName: thing, Certificate: cert})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("broker: no device certificate (*.pem, *.crt) in %s", dir)
	}
	return out, nil
}

func (a *AWS) prepare() error {
	if a.Policy == nil {
		return errors.New("broker: AWS emulation needs a policy")
	}
	if a.Region == "" {
		a.Region = "us-east-1"
	}
	if a.Account == "" {
		a.Account = "123456789012"
	}
	a.reg = &registry{things: map[[32]byte][]string{}}
	for _, d := range a.Devices {
		if d.Certificate == nil || d.ThingName == "" {
			return errors.New("broker: AWS device without certificate or thing name")
		}
		fp := sha256.Sum256(d.Certificate.Raw)
		a.reg.things[fp] = append(a.reg.things[fp], d.ThingName)
	}
	return nil
}

// capabilities adjusts mochi's advertised capabilities. AWS IoT Core supports QoS 0 and 1 only
// (awsDocMQTTDifferences): MQTT 5 clients see Maximum QoS 1 in CONNACK, and subscriptions asking
// for QoS 2 are granted QoS 1 [MQTT-3.2.2-9]. A persistent session is kept one hour after the
// disconnection (awsDocPersistentSessions): a 3.1.1 session (clean session 0) for that long, an
// MQTT 5 session for its Session Expiry Interval capped at an hour (CONNACK tells the client).
func (a *AWS) capabilities(c *mqtt.Capabilities) {
	c.MaximumQos = 1
	c.MaximumSessionExpiryInterval = AWSSessionExpiry
	c.MinimumProtocolVersion = 4 // AWS IoT Core speaks MQTT 3.1.1 and 5 only
	c.TopicAliasMaximum = 8      // AWS IoT Core's Topic Alias Maximum (awsDocMQTTDifferences)
}

func (a *AWS) arn(kind, name string) string {
	return "arn:aws:iot:" + a.Region + ":" + a.Account + ":" + kind + "/" + name
}

// awsClient is what the emulation knows about a connected device.
type awsClient struct {
	thing    string    // "" when unresolved
	policies []*Policy // a custom authorizer's policies; nil: AWS.Policy
}

// allowed evaluates the connection's policies: a Deny in any wins, else an Allow in any.
func (a *AWS) allowed(s *session, action, resource string, vars map[string]string) bool {
	if s.aws.policies == nil {
		return a.Policy.Allowed(action, resource, vars)
	}
	allow := false
	for _, p := range s.aws.policies {
		for _, st := range p.Statements {
			if st.matches(action, resource, vars) {
				if st.Effect == "Deny" {
					return false
				}
				allow = true
			}
		}
	}
	return allow
}

func (a *AWS) vars(cl *mqtt.Client, s *session) map[string]string {
	v := map[string]string{"iot:ClientId": cl.ID}
	if s.aws.thing != "" {
		v["iot:Connection.Thing.ThingName"] = s.aws.thing
	}
	return v
}

// authenticate decides a CONNECT. A connection that fails here is closed without CONNACK, as AWS
// IoT Core does for a certificate it does not know and for a denied iot:Connect
// (awsDocPolicyActions: "iot:Connect … the client ID"); the reason is only in the broker's log.
func (a *AWS) authenticate(cl *mqtt.Client, c *conn, s *session, pk packets.Packet) error {
	if name, ok := customAuthorizerName(string(pk.Connect.Username)); ok {
		return a.customAuthenticate(cl, c, s, pk, name)
	}
	if c == nil || c.tls == nil || len(c.tls.PeerCertificates) == 0 {
		return errors.New("no client certificate: AWS IoT Core authenticates devices by X.509 certificate")
	}
	leaf := c.tls.PeerCertificates[0]
	things, ok := a.reg.lookup(sha256.Sum256(leaf.Raw))
	if !ok {
		return fmt.Errorf("certificate %q (sha256 %x) is not registered", Identity(leaf), sha256.Sum256(leaf.Raw))
	}
	s.identity, s.method = Identity(leaf), "certificate"
	// Thing policy variables resolve to the thing the certificate is attached to; when it is
	// attached to several things, the client ID must equal one of their names
	// (awsDocPolicyVariables).
	switch {
	case len(things) == 1:
		s.aws.thing = things[0]
	default:
		for _, t := range things {
			if t == cl.ID {
				s.aws.thing = t
			}
		}
	}
	if !a.allowed(s, "iot:Connect", a.arn("client", cl.ID), a.vars(cl, s)) {
		return fmt.Errorf("policy denies iot:Connect for client ID %q", cl.ID)
	}
	return nil
}

// adjustKeepAlive applies AWS's keep-alive range (awsDocLimits, awsDocMQTTDifferences): a value
// below 30 s is raised to 30 s, one above 1200 s lowered to 1200 s, and 0 (no keep-alive)
// becomes 1200 s. MQTT 5 clients learn the value from the Server Keep Alive property of CONNACK
// [MQTT-3.2.2-21]; 3.1.1 clients only notice that the broker waits longer.
func (a *AWS) adjustKeepAlive(cl *mqtt.Client) {
	ka := cl.State.Keepalive
	switch {
	case ka == 0:
		ka = AWSMaxKeepAlive
	case ka < AWSMinKeepAlive:
		ka = AWSMinKeepAlive
	case ka > AWSMaxKeepAlive:
		ka = AWSMaxKeepAlive
	}
	if ka != cl.State.Keepalive {
		cl.State.Keepalive = ka
		cl.State.ServerKeepalive = cl.Properties.ProtocolVersion == 5
	}
}

// checkTopic applies the topic limits of awsDocLimits. The $aws/rules/<rule-name>/ prefix of
// Basic Ingest topics does not count toward the slashes.
func checkTopic(t string) error {
	if len(t) > AWSMaxTopicBytes {
		return fmt.Errorf("topic of %d bytes exceeds AWS IoT's %d", len(t), AWSMaxTopicBytes)
	}
	counted := t
	if strings.HasPrefix(strings.ToLower(t), "$aws/rules/") {
		if parts := strings.SplitN(t, "/", 4); len(parts) == 4 {
			counted = parts[3]
		}
	}
	if n := strings.Count(counted, "/"); n > AWSMaxTopicSlashes {
		return fmt.Errorf("topic with %d slashes exceeds AWS IoT's %d", n, AWSMaxTopicSlashes)
	}
	return nil
}

// Policy is an AWS IoT policy document. Only Effect, Action and Resource are evaluated;
// documents with Condition, NotAction or NotResource are refused by ParsePolicy rather than
// evaluated wrongly.
type Policy struct {
	Version    string
	Statements []Statement
}

// Statement is one statement of a policy.
type Statement struct {
	Effect    string // "Allow" or "Deny"
	Actions   []string
	Resources []string
}

// LoadPolicy reads a policy document.
func LoadPolicy(path string) (*Policy, error) { return loadFile(path, "policy", ParsePolicy) }

// stringOrList decodes a JSON string or array of strings.
type stringOrList []string

func (s *stringOrList) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
		var l []string
		err := json.Unmarshal(b, &l)
		*s = l
		return err
	}
	var one string
	if err := json.Unmarshal(b, &one); err != nil {
		return err
	}
	*s = []string{one}
	return nil
}

type rawStatement struct {
	Sid         string          `json:"Sid"`
	Effect      string          `json:"Effect"`
	Action      stringOrList    `json:"Action"`
	Resource    stringOrList    `json:"Resource"`
	NotAction   json.RawMessage `json:"NotAction"`
	NotResource json.RawMessage `json:"NotResource"`
	Condition   json.RawMessage `json:"Condition"`
}

// ParsePolicy parses an AWS IoT policy document ("Statement" may be one object or a list,
// "Action" and "Resource" a string or a list).
func ParsePolicy(data []byte) (*Policy, error) {
	var doc struct {
		Version   string          `json:"Version"`
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("broker: policy: %w", err)
	}
	var raws []rawStatement
	switch t := bytes.TrimSpace(doc.Statement); {
	case len(t) == 0:
		return nil, errors.New("broker: policy: no Statement")
	case t[0] == '[':
		if err := json.Unmarshal(t, &raws); err != nil {
			return nil, fmt.Errorf("broker: policy: %w", err)
		}
	default:
		var one rawStatement
		if err := json.Unmarshal(t, &one); err != nil {
			return nil, fmt.Errorf("broker: policy: %w", err)
		}
		raws = []rawStatement{one}
	}
	p := &Policy{Version: doc.Version}
	for i, r := range raws {
		where := fmt.Sprintf("broker: policy: statement %d", i+1)
		if r.Sid != "" {
			where += " (" + r.Sid + ")"
		}
		if r.Condition != nil || r.NotAction != nil || r.NotResource != nil {
			return nil, fmt.Errorf("%s: Condition, NotAction and NotResource are not supported by the emulation", where)
		}
		if r.Effect != "Allow" && r.Effect != "Deny" {
			return nil, fmt.Errorf("%s: Effect must be Allow or Deny, not %q", where, r.Effect)
		}
		if len(r.Action) == 0 || len(r.Resource) == 0 {
			return nil, fmt.Errorf("%s: needs Action and Resource", where)
		}
		p.Statements = append(p.Statements, Statement{Effect: r.Effect, Actions: r.Action, Resources: r.Resource})
	}
	return p, nil
}

// Allowed evaluates the policy for one action on one resource ARN, with the given policy variable
// values (keys like "iot:ClientId"). As in AWS, an explicit Deny wins over any Allow, and what no
// statement allows is denied. Actions match case-insensitively, resources case-sensitively, both
// with the wildcards * (any sequence, "/" included) and ? (one character); MQTT's + and # are
// ordinary characters in a policy. A statement whose resource uses a variable without a value does
// not match (awsDocPolicyVariables).
func (p *Policy) Allowed(action, resource string, vars map[string]string) bool {
	allow := false
	for _, st := range p.Statements {
		if !st.matches(action, resource, vars) {
			continue
		}
		if st.Effect == "Deny" {
			return false
		}
		allow = true
	}
	return allow
}

func (st Statement) matches(action, resource string, vars map[string]string) bool {
	okAction := false
	for _, a := range st.Actions {
		if glob(strings.ToLower(a), strings.ToLower(action)) {
			okAction = true
			break
		}
	}
	if !okAction {
		return false
	}
	for _, r := range st.Resources {
		if pat, ok := substitute(r, vars); ok && glob(pat, resource) {
			return true
		}
	}
	return false
}

// substitute replaces ${name} policy variables; ok is false when one has no value.
func substitute(s string, vars map[string]string) (string, bool) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), true
		}
		j := strings.Index(s[i:], "}")
		if j < 0 {
			b.WriteString(s)
			return b.String(), true
		}
		v, ok := vars[s[i+2:i+j]]
		if !ok {
			return "", false
		}
		b.WriteString(s[:i])
		b.WriteString(v)
		s = s[i+j+1:]
	}
}

// glob matches s against pattern with * and ?.
func glob(pattern, s string) bool {
	px, sx := 0, 0
	nextP, nextS := -1, -1
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				nextP, nextS = px, sx+1
				px++
				continue
			case '?':
				if sx < len(s) {
					px++
					sx++
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if nextS > 0 && nextS <= len(s) {
			px, sx = nextP, nextS
			continue
		}
		return false
	}
	return true
}

// allowedSubscribe decides one filter of a SUBSCRIBE (iot:Subscribe on topicfilter/).
func (a *AWS) allowedSubscribe(cl *mqtt.Client, s *session, filter string) bool {
	return a.allowed(s, "iot:Subscribe", a.arn("topicfilter", filter), a.vars(cl, s))
}

// allowedPublish decides a PUBLISH from the client (iot:Publish on topic/).
func (a *AWS) allowedPublish(cl *mqtt.Client, s *session, topic string) bool {
	return a.allowed(s, "iot:Publish", a.arn("topic", topic), a.vars(cl, s))
}

// allowedReceive decides one delivery to the client (iot:Receive on topic/).
func (a *AWS) allowedReceive(cl *mqtt.Client, s *session, topic string) bool {
	return a.allowed(s, "iot:Receive", a.arn("topic", topic), a.vars(cl, s))
}

// inspect applies the AWS rules to a PUBLISH or SUBSCRIBE before mochi processes it. It returns
// the packet to process, or an error when the connection is to end. How it ends follows AWS
// (awsDocMQTTDifferences, awsDocReasonCodes): an MQTT 3.1.1 client is disconnected, as 3.1.1 has
// no way to report the failure; an MQTT 5 client gets a reason code: 0x87 on PUBACK or SUBACK
// for what the policy denies (decided later in OnACLCheck), DISCONNECT with 0x9B, 0x90 or 0x95
// for QoS 2, oversized topics and oversized payloads.
func (a *AWS) inspect(cl *mqtt.Client, s *session, pk packets.Packet) (packets.Packet, *violation) {
	v5 := cl.Properties.ProtocolVersion == 5
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if pk.FixedHeader.Qos == 2 {
			return pk, &violation{packets.ErrQosNotSupported, "QoS 2 publish: AWS IoT Core supports QoS 0 and 1 only", awsDocMQTTDifferences}
		}
		if err := checkTopic(pk.TopicName); err != nil {
			return pk, &violation{packets.ErrTopicNameInvalid, err.Error(), awsDocLimits}
		}
		if len(pk.Payload) > AWSMaxPayload {
			return pk, &violation{packets.ErrPacketTooLarge, fmt.Sprintf("payload of %d bytes exceeds AWS IoT's %d", len(pk.Payload), AWSMaxPayload), awsDocLimits}
		}
		if !v5 && pk.TopicName != "" && !a.allowedPublish(cl, s, pk.TopicName) {
			return pk, &violation{packets.ErrNotAuthorized, fmt.Sprintf("policy denies iot:Publish on %q", pk.TopicName), awsDocPolicyActions}
		}
	case packets.Subscribe:
		decisions := map[string]bool{}
		for i, f := range pk.Filters {
			if err := checkTopic(f.Filter); err != nil {
				if !v5 {
					return pk, &violation{packets.ErrTopicFilterInvalid, err.Error(), awsDocLimits}
				}
				// mochi answers an invalid filter with 0x8F Topic Filter invalid.
				pk.Filters[i].Filter = "#/" + f.Filter
				continue
			}
			ok := a.allowedSubscribe(cl, s, f.Filter)
			if !ok && !v5 {
				return pk, &violation{packets.ErrNotAuthorized, fmt.Sprintf("policy denies iot:Subscribe on %q", f.Filter), awsDocPolicyActions}
			}
			decisions[f.Filter] = ok
		}
		s.setPending(decisions)
	}
	return pk, nil
}

type violation struct {
	code   packets.Code
	reason string
	doc    string // the AWS documentation page of the rule, for the broker's log
}
