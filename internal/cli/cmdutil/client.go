package cmdutil

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/diagnose"
	"github.com/fennec-mqtt/fennec/packet"
)

// This file adapts the fennec client library to the commands (see mqtt.go for the seam).

type FennecClient struct {
	Client *fennec.Client
	spec   *ConnSpec
}

// ClientConfig is the part of the client configuration every command takes from spec: the
// broker, identity, credentials, keep alive, session, TLS, version and capture.
func ClientConfig(spec *ConnSpec) fennec.Config {
	cfg := fennec.Config{
		VersionFallback:  spec.VersionFallback,
		Server:           spec.Server,
		ClientID:         spec.ClientID,
		Username:         spec.Username,
		KeepAlive:        spec.KeepAlive,
		CleanStart:       spec.CleanStart,
		TLSConfig:        spec.TLS,
		ConnectTimeout:   spec.Timeout,
		DisableReconnect: !spec.Reconnect,
		Version:          packet.V5,
	}
	if spec.Version == 4 {
		cfg.Version = packet.V311
	}
	if spec.capture != nil {
		cfg.Dial = spec.capture.Rec.Dial(nil)
	}
	if spec.HasPassword {
		cfg.Password = spec.Password
		if cfg.Password == nil {
			cfg.Password = []byte{}
		}
	}
	if spec.SessionExpiry != nil {
		cfg.SessionExpiry = time.Duration(*spec.SessionExpiry) * time.Second
	}
	return cfg
}

// Connect dials the broker described by spec.
func Connect(ctx context.Context, spec *ConnSpec) (MQTTClient, error) {
	cfg := ClientConfig(spec)
	if spec.Will != nil {
		w := toFennecMessage(spec.Will)
		if spec.WillDelay != nil {
			w.Props.SetWillDelayInterval(*spec.WillDelay)
		}
		cfg.Will = w
	}
	applyConnectProps(&cfg, spec.Props["connect"])
	setCallbacks(&cfg, spec)
	c, err := fennec.Connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	noteConnected(c, spec)
	return &FennecClient{Client: c, spec: spec}, nil
}

// applyConnectProps sets the CONNECT properties of -D connect:….
func applyConnectProps(cfg *fennec.Config, props []prop) {
	if len(props) == 0 {
		return
	}
	cp := cfg.ConnectProperties
	if cp == nil {
		cp = new(packet.Properties)
		cfg.ConnectProperties = cp
	}
	for _, p := range props {
		switch p.Name {
		case "receive-maximum":
			cfg.ReceiveMaximum = uint16(p.Num)
		case "maximum-packet-size":
			cfg.MaxPacketSize = p.Num
		case "request-response-information":
			cp.SetRequestResponseInformation(byte(p.Num))
		case "request-problem-information":
			cp.SetRequestProblemInformation(byte(p.Num))
		case "authentication-method":
			cp.SetAuthenticationMethod(p.Value)
		case "authentication-data":
			cp.SetAuthenticationData([]byte(p.Value))
		case "user-property":
			cp.AddUserProperty(p.Key, p.Value)
		}
	}
}

// setCallbacks connects the spec's trace (-d), packet hook, message handler and connection
// callbacks to the client's.
func setCallbacks(cfg *fennec.Config, spec *ConnSpec) {
	if tr, hook := spec.Trace, spec.OnPacket; tr != nil || hook != nil {
		v := cfg.Version
		facts := spec.TLSFacts
		cfg.Trace = func(e fennec.TraceEvent) {
			if hook != nil && e.Packet != nil {
				hook(e.Outbound, byte(e.Packet.Type()))
			}
			if tr == nil {
				return
			}
			switch {
			case e.Packet != nil:
				tr.packet(e.Outbound, describePacket(e.Packet, v))
			case e.TLS != nil:
				tr.tls(e.TLS, facts)
			case e.Note != "":
				tr.note("%s", e.Note)
			}
		}
		if tr != nil {
			cfg.OnConnectionLost = func(_ *fennec.Client, err error) { tr.note("%s", LostText(err)) }
		}
	}
	if h := spec.OnMessage; h != nil {
		cfg.DefaultHandler = func(fm *fennec.Message) { h(fromFennecMessage(fm)) }
	}
	if spec.OnLost != nil {
		prev := cfg.OnConnectionLost
		cfg.OnConnectionLost = func(c *fennec.Client, err error) {
			if prev != nil {
				prev(c, err)
			}
			spec.OnLost(err)
		}
	}
	if f := spec.OnConnectError; f != nil {
		cfg.OnConnectError = func(_ *fennec.Client, err error) { f(err) }
	}
}

// noteConnected records in spec what the connection found out: a fallback to MQTT 3.1.1 (said
// unless quiet) and the embedded broker's AWS IoT emulation.
func noteConnected(c *fennec.Client, spec *ConnSpec) {
	if spec.Version == 5 && c.Version() == packet.V311 {
		spec.Version = 4 // hints and -D from here on are those of 3.1.1
		if spec.notes != nil {
			fmt.Fprintln(spec.notes, "fennec: note: the broker does not speak MQTT 5 (its CONNACK refused the version): connected with MQTT 3.1.1; -V 5 or -V 311 chooses the version and turns this off")
		}
	}
	if _, ack := c.ConnectionState(); ack != nil {
		for _, up := range ack.Props.UserProperties {
			if up.Key == broker.EmulationProperty && up.Value == "aws-iot" {
				spec.AWS = true // the AWS emulation said so: its failures have AWS's causes
			}
		}
	}
}

func toFennecMessage(m *Message) *fennec.Message {
	fm := &fennec.Message{Topic: m.Topic, Payload: m.Payload, QoS: packet.QoS(m.QoS), Retain: m.Retain}
	p := &fm.Props
	mp := m.Props
	if mp.PayloadFormat != nil {
		p.SetPayloadFormat(*mp.PayloadFormat)
	}
	if mp.MessageExpiry != nil {
		p.SetMessageExpiryInterval(*mp.MessageExpiry)
	}
	if mp.ResponseTopic != "" {
		p.SetResponseTopic(mp.ResponseTopic)
	}
	if mp.CorrelationData != nil {
		p.SetCorrelationData(mp.CorrelationData)
	}
	if mp.ContentType != "" {
		p.SetContentType(mp.ContentType)
	}
	for _, u := range mp.User {
		p.AddUserProperty(u[0], u[1])
	}
	return fm
}

func fromFennecMessage(fm *fennec.Message) *Message {
	m := &Message{Topic: fm.Topic, Payload: fm.Payload, QoS: byte(fm.QoS), Retain: fm.Retain, Dup: fm.Dup, PacketID: fm.PacketID, Time: time.Now()}
	p := &fm.Props
	mp := &m.Props
	if p.Has(packet.PropPayloadFormat) {
		v := p.PayloadFormat
		mp.PayloadFormat = &v
	}
	if p.Has(packet.PropMessageExpiry) {
		v := p.MessageExpiryInterval
		mp.MessageExpiry = &v
	}
	if p.Has(packet.PropTopicAlias) {
		v := p.TopicAlias
		mp.TopicAlias = &v
	}
	mp.ResponseTopic = p.ResponseTopic
	mp.CorrelationData = p.CorrelationData
	mp.ContentType = p.ContentType
	for _, id := range p.SubscriptionIdentifiers {
		mp.SubscriptionIDs = append(mp.SubscriptionIDs, int(id))
	}
	for _, u := range p.UserProperties {
		mp.User = append(mp.User, [2]string{u.Key, u.Value})
	}
	return m
}

func (f *FennecClient) Publish(ctx context.Context, m *Message) error {
	return f.Client.Publish(ctx, toFennecMessage(m))
}

func (f *FennecClient) Subscribe(ctx context.Context, h func(*Message), subs []Subscription) ([]byte, error) {
	ps := make([]packet.Subscription, len(subs))
	for i, s := range subs {
		ps[i] = packet.Subscription{Filter: s.Filter, QoS: packet.QoS(s.QoS), RetainAsPublished: s.RetainAsPublished}
	}
	ack, err := f.Client.Subscribe(ctx, func(fm *fennec.Message) { h(fromFennecMessage(fm)) }, ps...)
	if ack == nil {
		if err == nil {
			err = errors.New("no SUBACK")
		}
		return nil, err
	}
	granted := make([]byte, len(ack.ReasonCodes))
	for i, c := range ack.ReasonCodes {
		granted[i] = byte(c)
	}
	// A refused filter is reported through the granted codes, with its reason.
	var re *fennec.ReasonError
	if err != nil && !errors.As(err, &re) {
		return granted, err
	}
	return granted, nil
}

func (f *FennecClient) Unsubscribe(ctx context.Context, filters []string) error {
	return f.Client.Unsubscribe(ctx, filters...)
}

func (f *FennecClient) Disconnect(ctx context.Context) error {
	err := f.Client.Disconnect(ctx)
	// Disconnect does not wait for a handler or callback that is running (it could be the
	// caller); the commands never disconnect from one, so they wait: a callback still printing
	// (a lost connection's note) would otherwise write beside the command's last words.
	select {
	case <-f.Client.Done():
	case <-ctx.Done():
	}
	if tr := f.spec.Trace; tr != nil {
		st := f.Client.Stats()
		tr.note("stats: %d connection(s), %d QoS 0 message(s) dropped (handler queue full), %d QoS 2 message(s) the broker resent after their PUBREL",
			st.Connections, st.DroppedQoS0, st.QoS2ResentAfterRelease)
	}
	if errors.Is(err, fennec.ErrClosed) {
		return nil
	}
	return err
}

func (f *FennecClient) TLSState() *tls.ConnectionState {
	st, _ := f.Client.ConnectionState()
	return st
}

// ExplainClientError classifies the client library's typed errors: the phase of a failed
// connection attempt, a reason code from the broker, a protocol violation.
func ExplainClientError(err error, spec *ConnSpec) *Failure {
	var ce *fennec.ConnectError
	var re *fennec.ReasonError
	var pe *fennec.ProtocolError
	switch {
	case errors.As(err, &re):
		return reasonErrorExplained(err, re, spec)
	case errors.As(err, &ce):
		return explainConnectError(err, ce, spec)
	case errors.As(err, &pe):
		return &Failure{Code: ExitError, Err: err, Step: "mqtt", Hint: "step: MQTT\ncause: the broker broke the protocol: " + pe.Msg + "\nfix: run with -d to see the packets; report it to the broker's maintainers"}
	case errors.Is(err, fennec.ErrNotSupported):
		return explainNotSupported(err, spec)
	case errors.Is(err, fennec.ErrDeliveryUnknown):
		return &Failure{Code: ExitNetwork, Err: err, Step: "mqtt", Hint: "step: MQTT PUBLISH (QoS 2, between PUBREC and PUBCOMP)\ncause: the connection dropped and the broker came back without the session, so it forgot the message it had acknowledged; a broker that forwards QoS 2 messages on PUBREL (mosquitto) has dropped it\nfix: publish again if a duplicate is acceptable; keep the session (-c with a fixed -i) so that the handshake can finish after a reconnect"}
	case errors.Is(err, fennec.ErrKeepAliveTimeout), errors.Is(err, fennec.ErrWriteTimeout):
		return &Failure{Code: ExitTimeout, Err: err, Step: "mqtt", Hint: "cause: the broker stopped answering\nfix: check the network; run with -d to see the last packets"}
	case errors.Is(err, fennec.ErrConnectionLost):
		h := "step: MQTT\ncause: the connection ended before the broker acknowledged the operation"
		if IsAWS(spec) {
			h += "\ncause: AWS IoT Core disconnects an MQTT 3.1.1 client that publishes or subscribes where its policy does not allow it (iot:Publish / iot:Subscribe), and drops QoS 2\nfix: check the policy's topic/ and topicfilter/ resources; use -q 0 or 1"
		} else {
			h += "\nfix: run with -d to see the last packets; the broker's log tells why it closed the connection"
		}
		return &Failure{Code: ExitNetwork, Err: err, Step: "mqtt", Hint: h}
	}
	return nil
}

// brokerAddr is host:port of spec, for the hints.
func brokerAddr(spec *ConnSpec) string {
	if spec == nil {
		return "the broker"
	}
	return net.JoinHostPort(spec.Host, fmt.Sprint(spec.Port))
}

// explainConnectError explains a failed connection attempt by the step that failed.
func explainConnectError(err error, ce *fennec.ConnectError, spec *ConnSpec) *Failure {
	addr := brokerAddr(spec)
	switch ce.Phase {
	case fennec.PhaseDNS, fennec.PhaseTCP:
		if e := explainNet(err, spec, "connecting"); e != nil {
			e.Step = string(ce.Phase)
			return e
		}
		return &Failure{Code: ExitNetwork, Err: err, Step: string(ce.Phase), Hint: fmt.Sprintf("step: %s — connecting to %s\ncause: %v\nfix: check the host name and port", strings.ToUpper(string(ce.Phase)), addr, ce.Err)}
	case fennec.PhaseTLS:
		if e := explainTLS(err, spec); e != nil {
			return e
		}
		if e := explainNet(err, spec, "the TLS handshake"); e != nil {
			e.Step = "tls"
			if e.Code == ExitError {
				e.Code = ExitNetwork
			}
			return e
		}
		return &Failure{Code: ExitNetwork, Err: err, Step: "tls", Hint: fmt.Sprintf("step: TLS — the handshake with %s\ncause: %v\nfix: run with -d to see the TLS facts", addr, ce.Err)}
	case fennec.PhaseWebSocket:
		return &Failure{Code: ExitNetwork, Err: err, Step: "websocket", Hint: fmt.Sprintf("step: WebSocket upgrade at %s\ncause: %v\nfix: check the path (usually /mqtt) and that the port serves MQTT over WebSockets", addr, ce.Err)}
	case fennec.PhaseMQTT:
		return explainConnectStep(err, spec)
	}
	return nil
}

// explainConnectStep explains a connection that failed after the transport was up: a TLS 1.3
// verdict on the client certificate arriving with the first read, no CONNACK in time, a
// connection closed right after CONNECT, an answer that is not a CONNACK.
func explainConnectStep(err error, spec *ConnSpec) *Failure {
	addr := brokerAddr(spec)
	closed := errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, fennec.ErrConnectionLost) || errors.Is(err, syscall.EPIPE)
	if spec != nil && spec.TLS != nil {
		// Under TLS 1.3 the server judges the client certificate after the client's
		// side of the handshake is done: its verdict arrives with the first read.
		requested, sent, _ := spec.TLSFacts.Snapshot()
		if _, alert := diagnose.RemoteAlert(err); alert || closed && requested && !sent {
			if e := explainTLS(err, spec); e != nil {
				return e
			}
		}
		if closed && sent {
			if e := recheckTLS(err, spec); e != nil {
				return e
			}
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return &Failure{Code: ExitTimeout, Err: err, Step: "mqtt", Hint: fmt.Sprintf("step: MQTT — waiting for CONNACK from %s\ncause: the connection is up but the server did not answer CONNECT in time\nfix: check that the port speaks MQTT (not HTTP or another protocol); raise --connect-timeout on a slow link", addr)}
	}
	if closed {
		h := fmt.Sprintf("step: MQTT — CONNECT to %s\ncause: the server closed the connection right after CONNECT, without a CONNACK", addr)
		if IsAWS(spec) {
			h += "\ncause: AWS IoT Core does this when the policy attached to the certificate does not allow iot:Connect for this client ID, when the certificate is not ACTIVE or not attached to the policy, or when another connection uses the same client ID\nfix: allow iot:Connect on arn:aws:iot:REGION:ACCOUNT:client/" + clientIDOr(spec) + " in the policy attached to this certificate, activate the certificate, and use a client ID the policy names (usually the thing name, -i)"
		} else {
			h += "\ncause: brokers do this when they refuse the client without saying why: an ACL or policy that forbids this client ID or certificate, a duplicate client ID, or a protocol version they do not accept"
			if spec != nil && spec.TLS != nil && spec.ClientCert {
				h += "\ncause: or the server rejected the client certificate: under TLS 1.3 it checks the certificate after the handshake and may just close the connection"
			}
			h += "\nfix: check the broker's log; try -V 311 if it is an old broker; use another client ID (-i)"
		}
		return &Failure{Code: ExitRefused, Err: err, Step: "mqtt", Hint: h}
	}
	var pe *fennec.ProtocolError
	if errors.As(err, &pe) {
		return &Failure{Code: ExitError, Err: err, Step: "mqtt", Hint: "step: MQTT — CONNECT\ncause: the server answered something that is not a valid CONNACK (" + pe.Msg + ")\nfix: check that the port speaks MQTT; run with -d to see the packets"}
	}
	return nil
}

// explainNotSupported explains a request refused before sending because the broker's CONNACK
// said it does not support it.
func explainNotSupported(err error, spec *ConnSpec) *Failure {
	h := "step: MQTT PUBLISH (refused before sending)\ncause: the broker said in its CONNACK that it does not support this"
	switch {
	case strings.Contains(err.Error(), "QoS"):
		h += " QoS"
		if IsAWS(spec) {
			h += "; AWS IoT Core supports QoS 0 and 1 only"
		}
		h += "\nfix: publish with a lower QoS (-q 1 or -q 0)"
	case strings.Contains(err.Error(), "retain"):
		h += "; it keeps no retained messages\nfix: publish without -r"
	case strings.Contains(err.Error(), "wildcard subscriptions"):
		h = "step: MQTT SUBSCRIBE (refused before sending)\ncause: the broker said in its CONNACK that it takes no wildcard subscriptions (Wildcard Subscription Available 0)\nfix: subscribe to each topic by its name, without + or #"
	case strings.Contains(err.Error(), "shared subscriptions"):
		h = "step: MQTT SUBSCRIBE (refused before sending)\ncause: the broker said in its CONNACK that it has no shared subscriptions (Shared Subscription Available 0)\nfix: subscribe without $share/GROUP/, or use a broker that shares"
	default:
		h += "\nfix: run with -d to see the CONNACK's properties"
	}
	return &Failure{Code: ExitRefused, Err: err, Step: "mqtt", Hint: h}
}

func clientIDOr(spec *ConnSpec) string {
	if spec != nil && spec.ClientID != "" {
		return spec.ClientID
	}
	return "CLIENT_ID"
}

func reasonErrorExplained(err error, re *fennec.ReasonError, spec *ConnSpec) *Failure {
	e := &Failure{Code: ExitRefused, Err: err, Step: "mqtt"}
	step := "step: MQTT " + re.Packet.String()
	var cause, fix string
	v311 := re.Version == packet.V311
	code := byte(re.Code)
	switch {
	case re.Packet == packet.CONNACK && v311 && code == 1 && spec != nil && spec.Version == 5:
		cause, fix = "the broker does not speak MQTT 5: it answered the MQTT 5 CONNECT with an MQTT 3.1.1 CONNACK, return code 1 (unacceptable protocol version)", "connect with MQTT 3.1.1: -V 311 (or leave -V out: fennec then falls back to 3.1.1 by itself)"
	case re.Packet == packet.CONNACK && (v311 && code == 1 || !v311 && code == 0x84):
		cause, fix = "the broker does not accept this MQTT version", "try the other version: -V 311 or -V 5 (without -V, fennec falls back from 5 to 3.1.1 by itself)"
	case re.Packet == packet.CONNACK && (v311 && code == 2 || !v311 && code == 0x85):
		cause, fix = "the broker rejected the client ID", "use another client ID (-i); some brokers limit its length or characters"
	case re.Packet == packet.CONNACK && (v311 && code == 3 || !v311 && (code == 0x88 || code == 0x89)):
		cause, fix = "the broker is unavailable or busy", "try again later"
	case re.Packet == packet.CONNACK && (v311 && code == 4 || !v311 && code == 0x86):
		cause, fix = "bad user name or password", "check -u and the password (-P, or FENNEC_PASSWORD)"
	case re.Packet == packet.CONNACK && (v311 && code == 5 || !v311 && code == 0x87):
		cause, fix = "the client is not authorized to connect", "check the broker's ACL for this user, certificate or client ID"
	case re.Packet == packet.PUBACK || re.Packet == packet.PUBREC:
		cause, fix = "the broker did not accept the message", "check the broker's ACL for publishing to the topic"
		if code == 0x97 {
			fix = "slow down: the broker's quota was exceeded"
		}
	case re.Packet == packet.DISCONNECT:
		cause, fix = "the broker ended the connection", "the reason above says why; run with -d to see the packets before it"
		if code == 0x8E {
			fix = "another client connected with the same client ID: use a unique -i"
		}
	default:
		cause, fix = "the broker refused the request", "see the reason code above"
	}
	if re.Reason != "" {
		cause += " (broker says: " + re.Reason + ")"
	}
	if spec != nil && IsAWS(spec) && re.Packet != packet.CONNACK {
		fix += "; on AWS IoT Core check the policy attached to the certificate"
	}
	e.Hint = step + "\ncause: " + cause + "\nfix: " + fix
	return e
}

// DialClient connects with the connect timeout and turns a failure into an explained error.
func DialClient(ctx context.Context, spec *ConnSpec) (MQTTClient, error) {
	cctx := ctx
	if spec.Timeout > 0 {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, spec.Timeout)
		defer cancel()
	}
	spec.Trace.note("connecting to %s (MQTT %s)", spec.Server, VersionName(spec.Version))
	c, err := Connect(cctx, spec)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, Explain(err, spec, "connecting to "+spec.Server)
	}
	return c, nil
}

// Disconnect ends the session with DISCONNECT. It is bounded by 5 s and runs even when ctx is
// cancelled, so that Ctrl-C still leaves the broker a clean Disconnect (no will message).
func Disconnect(ctx context.Context, c MQTTClient, spec *ConnSpec) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := c.Disconnect(dctx); err != nil {
		return Explain(err, spec, "MQTT DISCONNECT")
	}
	return nil
}

func VersionName(v int) string {
	if v == 4 {
		return "3.1.1"
	}
	return "5.0"
}

// RefusedSubscription is the error for the first filter the broker refused in its SUBACK, or nil.
func RefusedSubscription(spec *ConnSpec, subs []Subscription, granted []byte) error {
	for i, g := range granted {
		if g >= 0x80 && i < len(subs) {
			return &Failure{Code: ExitRefused, Step: "mqtt", Err: fmt.Errorf("the broker refused the subscription to %q (%s)", subs[i].Filter, subackReason(g)),
				Hint: subscribeRefusedHint(spec, subs[i].Filter)}
		}
	}
	return nil
}

func subscribeRefusedHint(spec *ConnSpec, filter string) string {
	h := "step: MQTT SUBSCRIBE\ncause: the broker's access rules do not let this client subscribe to the filter"
	if spec != nil && IsAWS(spec) {
		h += "\nfix: the AWS IoT policy of the certificate needs iot:Subscribe on arn:aws:iot:REGION:ACCOUNT:topicfilter/" + filter + " and iot:Receive on the matching topic/ resources"
	} else {
		h += "\nfix: check the broker's ACL for this user or certificate"
	}
	return h
}
