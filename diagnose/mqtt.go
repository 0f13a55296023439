package diagnose

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/pki"
)

func (d *doctor) conn() net.Conn {
	if d.ws != nil {
		return d.ws
	}
	if d.tc != nil {
		return d.tc
	}
	return d.nc
}

func (d *doctor) write(p packet.Packet) error {
	b, err := p.Append(nil, d.t.Version)
	if err != nil {
		return err
	}
	d.writeDeadline(time.Now().Add(d.t.Timeout))
	_, err = d.conn().Write(b)
	return err
}

// identity says who the server saw: the client certificate's subject and names, the username.
func (d *doctor) identity() string {
	var parts []string
	if d.leaf != nil && d.rec != nil && d.rec.Info().CertificateSent {
		p := "client certificate " + pki.NameString(d.leaf.Subject)
		if names := pki.CertNames(d.leaf); len(names) > 0 {
			p += " (names " + strings.Join(names, ", ") + ")"
		}
		parts = append(parts, p)
	}
	if d.t.Username != "" {
		parts = append(parts, fmt.Sprintf("username %q", d.t.Username))
	}
	parts = append(parts, fmt.Sprintf("client ID %q", d.t.ClientID))
	return strings.Join(parts, ", ")
}

// certUser is the user a broker that takes the username from the client certificate would check
// (mosquitto's use_identity_as_username: the common name), when a certificate was sent and no
// username: sent is false when that is not the case, and cn is "" for a certificate without one.
func (d *doctor) certUser() (cn string, sent bool) {
	if d.leaf == nil || d.rec == nil || !d.rec.Info().CertificateSent || d.t.Username != "" {
		return "", false
	}
	return d.leaf.Subject.CommonName, true
}

// identityNote says what a broker that takes the username from the certificate saw.
func (d *doctor) identityNote() string {
	cn, ok := d.certUser()
	switch {
	case !ok:
		return ""
	case cn == "":
		return "no username was sent and the certificate has no common name: a broker that takes the username from the certificate (mosquitto's use_identity_as_username) has no user to check"
	default:
		return fmt.Sprintf("no username was sent: a broker that takes it from the certificate (mosquitto's use_identity_as_username) checks the user %q, the common name", cn)
	}
}

// aclFix is the fix for a topic the broker's ACL refused, naming the user the certificate gives.
func (d *doctor) aclFix(what string) string {
	if cn, ok := d.certUser(); ok && cn != "" {
		return fmt.Sprintf("%s a topic the broker's ACL allows (--topic), or allow this one for the user %q (mosquitto with use_identity_as_username: \"user %s\" then \"topic readwrite %s\" in its acl_file)", what, cn, cn, d.t.Topic)
	}
	return what + " a topic the broker's ACL allows (--topic), or allow this one"
}

func (d *doctor) tlsOK() string {
	if d.hasTLS {
		return fmt.Sprintf("TLS succeeded (%s)", tls.VersionName(d.state.Version))
	}
	return "the connection is plain TCP"
}

func (d *doctor) connect(ctx context.Context) *Diagnosis {
	c := &packet.Connect{Version: d.t.Version, CleanStart: true, KeepAlive: 30, ClientID: d.t.ClientID,
		Username: d.t.Username, HasUsername: d.t.Username != "", Password: d.t.Password, HasPassword: d.t.HasPassword || len(d.t.Password) > 0}
	if err := d.write(c); err != nil {
		return d.closedAtConnect(ctx, err)
	}
	d.readDeadline(time.Now().Add(d.t.Timeout))
	header, body, err := d.rd.ReadRaw()
	if err != nil {
		return d.closedAtConnect(ctx, err)
	}
	if header>>4 != byte(packet.CONNACK) {
		return &Diagnosis{Step: StepMQTT, Kind: CauseNotMQTT, Err: err,
			Cause:    fmt.Sprintf("the server answered CONNECT with something that is not a CONNACK (first byte 0x%02x)", header),
			Evidence: []string{fmt.Sprintf("%d bytes: % x", len(body)+1, append([]byte{header}, body[:min(len(body), 16)]...))},
			Fix:      "check that the port speaks MQTT (not HTTP, WebSockets or another protocol)"}
	}
	// A broker without MQTT 5 answers an MQTT 5 CONNECT with a 3.1.1 CONNACK: two bytes, return
	// code 1 (unacceptable protocol version).
	if d.t.Version == packet.V5 && len(body) == 2 && body[1] == 1 {
		return &Diagnosis{Step: StepMQTT, Kind: CauseMQTTVersion,
			Cause:    d.tlsOK() + "; the broker does not speak MQTT 5: it answered the MQTT 5 CONNECT with an MQTT 3.1.1 CONNACK, return code 1 (unacceptable protocol version)",
			Evidence: []string{fmt.Sprintf("CONNACK bytes: % x", append([]byte{header, byte(len(body))}, body...))},
			Fix:      "connect with MQTT 3.1.1: -V 311 (Config.Version = packet.V311)"}
	}
	p, err := packet.Decode(d.t.Version, header, body)
	if err != nil {
		return &Diagnosis{Step: StepMQTT, Kind: CauseNotMQTT, Err: err, Cause: "the CONNACK is malformed: " + err.Error(),
			Evidence: []string{fmt.Sprintf("CONNACK bytes: % x", append([]byte{header}, body[:min(len(body), 32)]...))},
			Fix:      "check that the port speaks MQTT; report the broker's malformed CONNACK to its maintainers"}
	}
	ack := p.(*packet.Connack)
	if ack.ReasonCode != 0 {
		return d.refused(ack)
	}
	facts := []string{"session present: " + fmt.Sprint(ack.SessionPresent), "identity: " + d.identity()}
	if d.t.Version == packet.V5 {
		if ack.Props.AssignedClientIdentifier != "" {
			facts = append(facts, "assigned client ID: "+ack.Props.AssignedClientIdentifier)
		}
		if ack.Props.MaximumPacketSize > 0 {
			facts = append(facts, fmt.Sprintf("maximum packet size: %d", ack.Props.MaximumPacketSize))
		}
	}
	d.pass(StepMQTT, fmt.Sprintf("CONNACK accepted (MQTT %s)", versionName(d.t.Version)), facts...)
	return nil
}

func versionName(v packet.Version) string {
	if v == packet.V311 {
		return "3.1.1"
	}
	return "5"
}

// closedAtConnect explains a connection that ended (or went silent) after CONNECT.
func (d *doctor) closedAtConnect(ctx context.Context, err error) *Diagnosis {
	if d.hasTLS {
		if _, alert := RemoteAlert(err); alert {
			return d.lateTLS(err)
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		diag := &Diagnosis{Step: StepMQTT, Kind: CauseConnackTimeout, Err: err,
			Cause: fmt.Sprintf("%s; the server did not answer CONNECT within %s", d.tlsOK(), d.t.Timeout),
			Fix:   "check that the port speaks MQTT; on a slow link raise the timeout"}
		if !d.t.TLS && d.nc != nil && probeTLS(ctx, &d.t, d.nc.RemoteAddr().String(), d.t.Host, d.t.Timeout) {
			return d.tlsPort(err)
		}
		return diag
	}
	if !d.t.TLS && d.nc != nil && probeTLS(ctx, &d.t, d.nc.RemoteAddr().String(), d.t.Host, d.t.Timeout) {
		return d.tlsPort(err)
	}
	how := "closed the connection"
	if errors.Is(err, syscall.ECONNRESET) {
		how = "reset the connection"
	}
	diag := &Diagnosis{Step: StepMQTT, Kind: CauseClosedAfterConnect, Err: err, Inferred: true,
		Cause:    fmt.Sprintf("%s, then the broker %s after CONNECT without a CONNACK: it refused this client without saying why", d.tlsOK(), how),
		Evidence: []string{"the server saw " + d.identity()}}
	if d.t.AWS {
		diag.Cause = fmt.Sprintf("%s, then AWS IoT Core %s after CONNECT without a CONNACK: it refused the connection", d.tlsOK(), how)
		diag.Candidates = []string{
			fmt.Sprintf("the policy attached to the certificate does not allow iot:Connect for client ID %q", d.t.ClientID),
			"the certificate is not ACTIVE, or not attached to a policy or a thing",
			"another connection uses the same client ID (AWS closes the older one)",
		}
		diag.Fix = fmt.Sprintf("allow iot:Connect on arn:aws:iot:REGION:ACCOUNT:client/%s in the policy attached to this certificate (aws iot get-effective-policies), activate the certificate (aws iot update-certificate --new-status ACTIVE), and use the client ID the policy names (usually the thing name, -i)", d.t.ClientID)
		return diag
	}
	diag.Candidates = []string{
		"an ACL or policy forbids this client ID, certificate or username",
		"the client ID is taken or not allowed",
		"the broker refuses this MQTT version without saying so (try -V 311)",
	}
	if d.hasTLS && d.leaf != nil {
		diag.Candidates = append(diag.Candidates[:1], append([]string{"the identity the broker takes from the certificate (e.g. mosquitto's use_identity_as_username) is not allowed"}, diag.Candidates[1:]...)...)
	}
	diag.Fix = "check the broker's log for the reason; try another client ID (-i) or -V 311"
	return diag
}

func (d *doctor) tlsPort(err error) *Diagnosis {
	return &Diagnosis{Step: StepMQTT, Kind: CauseTLSPort, Err: err,
		Cause:    fmt.Sprintf("%s speaks MQTT over TLS, and this client sent plain MQTT", d.rep.Target),
		Evidence: []string{"a TLS ClientHello sent to the same port got a ServerHello"},
		Fix:      "connect with TLS: mqtts://HOST:PORT (or --cafile), or use the broker's plain port (usually 1883)"}
}

// refused explains a CONNACK with a non-zero reason code.
func (d *doctor) refused(ack *packet.Connack) *Diagnosis {
	code := byte(ack.ReasonCode)
	name := ack.ReasonCode.String()
	if d.t.Version == packet.V311 {
		name = packet.ConnackReturnCodeString(ack.ReasonCode)
	}
	diag := &Diagnosis{Step: StepMQTT, Kind: CauseConnackRefused,
		Cause:    fmt.Sprintf("%s; the broker refused CONNECT: CONNACK %s (0x%02x)", d.tlsOK(), name, code),
		Evidence: []string{"the server saw " + d.identity()}}
	if rs := ack.Props.ReasonString; rs != "" {
		diag.Evidence = append(diag.Evidence, fmt.Sprintf("reason string: %q", rs))
	}
	if n := d.identityNote(); n != "" {
		diag.Evidence = append(diag.Evidence, n)
	}
	cn, byCert := d.certUser()
	v311 := d.t.Version == packet.V311
	switch {
	case v311 && code == 1 || !v311 && code == 0x84:
		diag.Kind = CauseMQTTVersion
		diag.Fix = "try the other MQTT version (-V 311 or -V 5)"
	case v311 && code == 2 || !v311 && code == 0x85:
		diag.Fix = "use another client ID (-i): some brokers limit its length or characters, or require one"
	case byCert && cn == "" && (v311 && (code == 4 || code == 5) || !v311 && (code == 0x86 || code == 0x87)):
		diag.Fix = "issue the client certificate with a common name the broker knows as a user (it becomes the username), or send -u and -P if the broker checks passwords"
	case byCert && (v311 && (code == 4 || code == 5) || !v311 && (code == 0x86 || code == 0x87)):
		diag.Fix = fmt.Sprintf("let the user %q (the certificate's common name) in: the broker's password file or ACL must name it; or send -u and -P if the broker checks passwords", cn)
	case v311 && code == 4 || !v311 && code == 0x86:
		diag.Fix = "check the username and password (-u, -P or --password-file)"
	case v311 && code == 5 || !v311 && code == 0x87:
		diag.Fix = "the broker's ACL or authentication does not allow this identity: check its configuration (for mosquitto with use_identity_as_username, the user is the certificate's common name)"
	case v311 && code == 3 || !v311 && (code == 0x88 || code == 0x89):
		diag.Fix = "the broker is unavailable or busy: try again later"
	case !v311 && code == 0x8A:
		diag.Fix = "this client is banned by the broker"
	case !v311 && (code == 0x9C || code == 0x9D):
		diag.Fix = "connect to the server the broker names: " + ack.Props.ServerReference
	case !v311 && code == 0x9F:
		diag.Fix = "the broker limits the connection rate: wait before connecting again"
	default:
		diag.Fix = "the broker's log says why; see the reason code in the MQTT 5 specification, section 3.2.2.2"
	}
	return diag
}

// roundTrip subscribes to the test topic, publishes to it at QoS 1 and waits for the message.
func (d *doctor) roundTrip(ctx context.Context) *Diagnosis {
	if d.t.NoPublish {
		return nil
	}
	start := time.Now()
	if err := d.write(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: d.t.Topic, QoS: 1}}}); err != nil {
		return d.lostIn(ctx, "SUBSCRIBE", CauseClosedAfterSubscribe, err)
	}
	payload := []byte("fennec doctor " + time.Now().UTC().Format(time.RFC3339Nano))
	subacked, pubacked, echoed := false, false, false
	deadline := time.Now().Add(d.t.Timeout)
	for !(subacked && pubacked && echoed) {
		d.readDeadline(deadline)
		p, err := d.rd.ReadPacket(d.t.Version)
		if err != nil {
			return d.roundTripLost(ctx, err, subacked, pubacked)
		}
		switch p := p.(type) {
		case *packet.Suback:
			if diag := d.subscribeRefused(p); diag != nil {
				return diag
			}
			subacked = true
			if err := d.write(&packet.Publish{QoS: 1, PacketID: 2, Topic: d.t.Topic, Payload: payload}); err != nil {
				return d.lostIn(ctx, "PUBLISH", CauseClosedAfterPublish, err)
			}
		case *packet.Puback:
			if diag := d.publishRefused(p); diag != nil {
				return diag
			}
			pubacked = true
		case *packet.Publish:
			if p.QoS > 0 {
				d.write(&packet.Puback{PacketID: p.PacketID})
			}
			if p.Topic == d.t.Topic && string(p.Payload) == string(payload) {
				echoed = true
			}
		case *packet.Disconnect:
			return d.disconnected(p)
		}
	}
	return d.roundTripPassed(ctx, time.Since(start))
}

// roundTripPassed lingers when asked and records the passed round trip that took took.
func (d *doctor) roundTripPassed(ctx context.Context, took time.Duration) *Diagnosis {
	if diag := d.linger(ctx); diag != nil {
		return diag
	}
	d.write(&packet.Disconnect{})
	summary := fmt.Sprintf("subscribed, published and received on %q in %s", d.t.Topic, took.Round(10*time.Microsecond))
	if d.t.Linger > 0 {
		summary += fmt.Sprintf("; the connection stayed up %s", d.t.Linger)
	}
	d.pass(StepRoundTrip, summary)
	return nil
}

// roundTripLost explains a read that failed during the round trip: no echo within the
// timeout after both acknowledgements, or a connection lost after SUBSCRIBE or PUBLISH.
func (d *doctor) roundTripLost(ctx context.Context, err error, subacked, pubacked bool) *Diagnosis {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && subacked && pubacked {
		diag := &Diagnosis{Step: StepRoundTrip, Kind: CauseNoEcho, Err: err,
			Cause:    fmt.Sprintf("the broker accepted the subscription to %q and the message, but did not deliver it back within %s", d.t.Topic, d.t.Timeout),
			Evidence: d.roundTripEvidence("MQTT 3.1.1 has no way to refuse a PUBLISH: a broker whose ACL denies it drops the message and acknowledges it"),
			Fix:      "check the broker's ACL for reading and writing the topic; on AWS IoT the policy needs iot:Receive on topic/" + d.t.Topic}
		if !d.t.AWS {
			diag.Fix = d.aclFix("check the broker's ACL for reading and writing the topic: use")
		}
		return diag
	}
	if !subacked {
		return d.lostIn(ctx, "SUBSCRIBE", CauseClosedAfterSubscribe, err)
	}
	return d.lostIn(ctx, "PUBLISH", CauseClosedAfterPublish, err)
}

// subscribeRefused explains a SUBACK that refuses the test subscription; nil when it grants it.
func (d *doctor) subscribeRefused(p *packet.Suback) *Diagnosis {
	if len(p.ReasonCodes) == 1 && p.ReasonCodes[0] < 0x80 {
		return nil
	}
	code := packet.ReasonCode(0x80)
	if len(p.ReasonCodes) > 0 {
		code = p.ReasonCodes[0]
	}
	diag := &Diagnosis{Step: StepRoundTrip, Kind: CauseSubscribeRefused,
		Cause:    fmt.Sprintf("the broker refused the subscription to %q: SUBACK %s (0x%02x)", d.t.Topic, code, byte(code)),
		Evidence: d.roundTripEvidence(""),
		Fix:      d.aclFix("subscribe to")}
	if d.t.AWS {
		diag.Fix = fmt.Sprintf("allow iot:Subscribe on topicfilter/%s and iot:Receive on topic/%s in the policy attached to this certificate, or give a topic it allows (--topic)", d.t.Topic, d.t.Topic)
	}
	return diag
}

// publishRefused explains a PUBACK that refuses the test message; nil when it accepts it.
func (d *doctor) publishRefused(p *packet.Puback) *Diagnosis {
	if p.ReasonCode < 0x80 {
		return nil
	}
	diag := &Diagnosis{Step: StepRoundTrip, Kind: CausePublishRefused,
		Cause:    fmt.Sprintf("the broker refused the message to %q: PUBACK %s (0x%02x)", d.t.Topic, p.ReasonCode, byte(p.ReasonCode)),
		Evidence: d.roundTripEvidence(""),
		Fix:      d.aclFix("publish to")}
	if d.t.AWS {
		diag.Fix = "allow iot:Publish on topic/" + d.t.Topic + " in the policy attached to this certificate, or give a topic it allows (--topic)"
	}
	return diag
}

// linger keeps the connection open for Target.Linger and explains its end if it ends.
func (d *doctor) linger(ctx context.Context) *Diagnosis {
	if d.t.Linger <= 0 {
		return nil
	}
	deadline := time.Now().Add(d.t.Linger)
	for {
		d.readDeadline(deadline)
		p, err := d.rd.ReadPacket(d.t.Version)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			held := d.t.Linger - time.Until(deadline)
			if diag := d.lostIn(ctx, "the round trip", CauseSessionTakenOver, err); diag.Kind == CauseSessionTakenOver && diag.Inferred {
				diag.Evidence = append(diag.Evidence, fmt.Sprintf("the round trip passed; the connection closed %s later", held.Round(time.Millisecond)))
				return diag
			}
			return &Diagnosis{Step: StepRoundTrip, Kind: CauseClosedAfterPublish, Err: err, Inferred: true,
				Cause:      fmt.Sprintf("the round trip passed, then the broker closed the connection %s later without saying why", held.Round(time.Millisecond)),
				Candidates: []string{"another client with the same client ID connected (a takeover)", "the broker restarted or dropped idle connections", "a network device on the way cut the connection"},
				Fix:        "check the broker's log at that moment; use a client ID of its own for each client"}
		}
		switch p := p.(type) {
		case *packet.Disconnect:
			return d.disconnected(p)
		case *packet.Publish:
			if p.QoS > 0 {
				d.write(&packet.Puback{PacketID: p.PacketID})
			}
		}
	}
}

// roundTripEvidence is who the broker judged the topic for, and extra when given.
func (d *doctor) roundTripEvidence(extra string) []string {
	ev := []string{"the server saw " + d.identity()}
	if n := d.identityNote(); n != "" {
		ev = append(ev, n)
	}
	if extra != "" && d.t.Version == packet.V311 {
		ev = append(ev, extra)
	}
	return ev
}

func (d *doctor) lostIn(ctx context.Context, what, kind string, err error) *Diagnosis {
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		diag := &Diagnosis{Step: StepRoundTrip, Kind: kind, Err: err,
			Cause: fmt.Sprintf("the broker closed the connection after %s to %q", what, d.t.Topic),
			Fix:   "the broker's ACL does not allow this topic: give one it allows (--topic), or allow it"}
		if d.t.AWS {
			action := "iot:Publish on topic/"
			if what == "SUBSCRIBE" {
				action = "iot:Subscribe on topicfilter/"
			}
			diag.Cause = fmt.Sprintf("AWS IoT Core closed the connection after %s to %q: the policy attached to the certificate does not allow it", what, d.t.Topic)
			diag.Fix = "allow " + action + d.t.Topic + " in the policy (or give a topic it allows with --topic)"
		}
		// A close without a reason (MQTT 3.1.1 has no DISCONNECT from the server) may be a
		// takeover: another client connected with this client ID. The same round trip with
		// another client ID tells the two apart.
		if !d.probe && d.probeOtherClientID(ctx) {
			other := diag.Cause
			diag.Kind, diag.Inferred = CauseSessionTakenOver, true
			diag.Cause = fmt.Sprintf("the broker closed the connection after %s, without saying why; the same round trip with another client ID works: another client is connected with the client ID %q and took the session back", what, d.t.ClientID)
			diag.Evidence = append(diag.Evidence, fmt.Sprintf("closed after %s with client ID %q; subscribed, published and received with a different client ID", what, d.t.ClientID))
			diag.Candidates = []string{"a session takeover: a client with the same ID (often the device itself, reconnecting) connected, and a broker closes the older connection",
				"a rule that names the client ID: " + other}
			diag.Fix = fmt.Sprintf("stop the other client that uses client ID %q (or let doctor use its own: drop -i)", d.t.ClientID)
			if d.t.AWS {
				diag.Candidates[1] = "a policy that allows the topic only for some client IDs (${iot:ClientId})"
			}
		}
		return diag
	}
	return &Diagnosis{Step: StepRoundTrip, Kind: kind, Err: err, Cause: fmt.Sprintf("%s to %q failed: %v", what, d.t.Topic, err), Fix: "run again with -d to see the packets"}
}

// probeOtherClientID runs TCP, TLS, CONNECT and the round trip again with another client ID,
// and reports whether they all passed.
func (d *doctor) probeOtherClientID(ctx context.Context) bool {
	if len(d.addrs) == 0 {
		return false
	}
	b := make([]byte, 3)
	rand.Read(b)
	p := &doctor{t: d.t, rep: &Report{}, rec: d.rec, cfg: d.cfg, leaf: d.leaf, addrs: d.addrs, probe: true}
	p.t.ClientID = d.t.ClientID + "-probe-" + hex.EncodeToString(b)
	p.t.Linger = 0
	defer func() {
		if p.nc != nil {
			p.nc.Close()
		}
	}()
	for _, step := range []func(context.Context) *Diagnosis{p.tcp, p.handshake, p.websocket, p.connect, p.roundTrip} {
		if step(ctx) != nil {
			return false
		}
	}
	return true
}

func (d *doctor) disconnected(p *packet.Disconnect) *Diagnosis {
	diag := &Diagnosis{Step: StepRoundTrip, Kind: CauseDisconnected,
		Cause: fmt.Sprintf("the broker sent DISCONNECT %s (0x%02x)", p.ReasonCode, byte(p.ReasonCode)),
		Fix:   "the broker's log says why"}
	if p.Props.ReasonString != "" {
		diag.Evidence = append(diag.Evidence, fmt.Sprintf("reason string: %q", p.Props.ReasonString))
	}
	if p.ReasonCode == 0x8E {
		diag.Kind = CauseSessionTakenOver
		diag.Cause = fmt.Sprintf("the broker ended this connection because another client connected with the same client ID %q (DISCONNECT 0x8E, session taken over)", d.t.ClientID)
		diag.Fix = "give every device its own client ID (-i); two clients sharing one take turns kicking each other off"
	}
	return diag
}

// readDeadline and writeDeadline bound the next read and write of MQTT packets: on the
// WebSocket when there is one (reaching its deadline closes it), else on the TCP connection.
func (d *doctor) readDeadline(t time.Time) {
	if d.ws != nil {
		d.ws.SetReadDeadline(t)
		return
	}
	d.nc.SetReadDeadline(t)
}

func (d *doctor) writeDeadline(t time.Time) {
	if d.ws != nil {
		d.ws.SetWriteDeadline(t)
		return
	}
	d.nc.SetWriteDeadline(t)
}
