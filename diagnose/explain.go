package diagnose

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/fennec-mqtt/fennec/awsiot"
	"github.com/fennec-mqtt/fennec/mqttconn"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/pki"
)

// Context is what Explain knows about a connection besides its error.
type Context struct {
	Host     string
	Port     int
	TLS      bool
	AWS      bool // explain as AWS IoT Core would cause it (also inferred from Host)
	ClientID string
	Username string
	Version  packet.Version // zero: 5
	// Recorder is the one given to pki.ClientOptions for the connection; nil gives less detail.
	Recorder *pki.HandshakeRecorder
}

// Explain turns an error from a connect (fennec.Client.Connect, mqttconn.Dial) into the
// diagnosis `fennec doctor` would give for it, without probing the broker again. It returns
// nil for a nil error.
func Explain(err error, c Context) *Diagnosis {
	if err == nil {
		return nil
	}
	if c.Version == 0 {
		c.Version = packet.V5
	}
	d := &doctor{t: Target{Host: c.Host, Port: c.Port, TLS: c.TLS, AWS: c.AWS || awsiot.IsEndpoint(c.Host), ClientID: c.ClientID, Username: c.Username, Version: c.Version},
		rep: &Report{Target: net.JoinHostPort(c.Host, strconv.Itoa(c.Port))}, rec: c.Recorder}
	if c.Recorder != nil {
		info := c.Recorder.Info()
		d.leaf = info.ClientLeaf
		if info.Verified {
			d.hasTLS = true
			d.state = tls.ConnectionState{Version: info.Version}
		}
	}
	if errors.Is(err, context.Canceled) {
		return &Diagnosis{Step: StepMQTT, Kind: CauseCanceled, Err: err, Cause: "interrupted", Fix: "run again"}
	}
	var ce *mqttconn.ConnectError
	var re *mqttconn.ReasonError
	if errors.As(err, &re) && re.Packet == packet.CONNACK {
		d.t.Version = re.Version
		diag := d.refused(&packet.Connack{ReasonCode: re.Code, Props: packet.Properties{ReasonString: re.Reason}})
		diag.Err = err
		return diag
	}
	if !errors.As(err, &ce) {
		return &Diagnosis{Step: StepMQTT, Kind: CauseUnknown, Err: err, Cause: err.Error(), Fix: "run `fennec doctor` against the broker for a step-by-step check"}
	}
	switch ce.Phase {
	case mqttconn.PhaseDNS:
		var de *net.DNSError
		diag := &Diagnosis{Step: StepDNS, Kind: CauseDNSFailure, Err: err, Cause: fmt.Sprintf("looking up %q failed: %v", c.Host, ce.Err), Fix: "check the host name and this machine's DNS"}
		if errors.As(err, &de) && de.IsNotFound {
			diag.Kind, diag.Cause, diag.Fix = CauseDNSNotFound, fmt.Sprintf("the name %q does not exist", c.Host), "check the spelling of the host name"
		}
		return diag
	case mqttconn.PhaseTCP:
		return d.tcpFailed(err)
	case mqttconn.PhaseTLS:
		diag := ExplainHandshake(err, c.Recorder)
		if diag == nil {
			diag = &Diagnosis{Step: StepTLS, Kind: DiagHandshakeFailure, Err: err, Cause: "the TLS handshake failed: " + ce.Err.Error(), Fix: "run `fennec doctor` for a step-by-step check"}
		}
		return diag
	}
	// PhaseMQTT (and WebSocket): the CONNECT was sent or about to be.
	if d.hasTLS {
		if _, alert := RemoteAlert(err); alert {
			return d.lateTLS(err)
		}
		if info := c.Recorder.Info(); info.Version == tls.VersionTLS13 && info.CertificateSent && info.CertificateUnsuitable {
			return d.lateTLS(err)
		}
	}
	var pe *mqttconn.ProtocolError
	if errors.As(err, &pe) {
		return &Diagnosis{Step: StepMQTT, Kind: CauseNotMQTT, Err: err, Cause: "the server answered CONNECT with something that is not a valid CONNACK: " + pe.Msg,
			Fix: "check that the port speaks MQTT, and the MQTT version (-V 311 for a broker without MQTT 5)"}
	}
	return d.closedAtConnect(context.Background(), err)
}

// Refine adds to a TLS diagnosis (from Explain or ExplainHandshake) what `fennec doctor`
// learns with probes on fresh connections to the same port: a plain MQTT port met with TLS
// (plain-mqtt-port instead of eof-during-handshake or not-tls), and the TLS versions the server
// accepts. So a program that met the failure names the same cause as the doctor. cfg is the
// client's TLS configuration (nil: none); probes send no application data.
func Refine(ctx context.Context, c Context, cfg *tls.Config, diag *Diagnosis) {
	if diag == nil || diag.Step != StepTLS {
		return
	}
	if cfg == nil {
		cfg = &tls.Config{}
	}
	rec := c.Recorder
	if rec == nil {
		rec = &pki.HandshakeRecorder{}
	}
	d := &doctor{t: Target{Host: c.Host, Port: c.Port, TLS: true, AWS: c.AWS || awsiot.IsEndpoint(c.Host), Timeout: 5 * time.Second},
		rep: &Report{}, rec: rec, cfg: cfg}
	d.refineTLS(ctx, net.JoinHostPort(c.Host, strconv.Itoa(c.Port)), diag)
}

// Recheck connects to the broker of c again with cfg (built by pki.ClientConfig with
// c.Recorder) and waits for the server's verdict on the client certificate before sending
// anything. Under TLS 1.3 a rejected client certificate reaches a client that has already sent
// CONNECT as an alert or as a reset, at random; Recheck turns that into the same answer on
// every run. It returns the TLS diagnosis when the server rejects the handshake or the
// certificate, and nil when it accepts both.
func Recheck(ctx context.Context, c Context, cfg *tls.Config) *Diagnosis {
	d := &doctor{t: Target{Host: c.Host, Port: c.Port, TLS: true, AWS: c.AWS || awsiot.IsEndpoint(c.Host), Timeout: 10 * time.Second},
		rep: &Report{}, rec: c.Recorder, cfg: cfg}
	if d.rec == nil {
		return nil
	}
	defer func() {
		if d.nc != nil {
			d.nc.Close()
		}
	}()
	for _, step := range []func(context.Context) *Diagnosis{d.dns, d.tcp, d.handshake} {
		if diag := step(ctx); diag != nil {
			if diag.Step != StepTLS {
				return nil
			}
			return diag
		}
	}
	return nil
}
