package cmdutil

import (
	"context"
	"crypto/tls"
	"strings"
	"time"

	"github.com/fennec-mqtt/fennec/diagnose"
	"github.com/fennec-mqtt/fennec/pki"
)

// explainTLS explains a failed TLS handshake (or a connection the server dropped right after
// it, which is how TLS 1.3 servers reject a client certificate) with the pki package's
// diagnosis. It returns nil when the pki package has no diagnosis.
func explainTLS(err error, spec *ConnSpec) *Failure {
	var rec *pki.HandshakeRecorder
	if spec != nil && spec.TLSFacts != nil {
		rec = spec.TLSFacts.Rec
	}
	d := diagnose.ExplainHandshake(err, rec)
	if d == nil {
		return nil
	}
	if spec != nil && (d.Kind == diagnose.DiagEOFDuringHandshake || d.Kind == diagnose.DiagNotTLS || d.Kind == diagnose.DiagVersion) {
		// The doctor's probes, so that the cause is the doctor's (plain-mqtt-port, the
		// versions the server accepts).
		if d.Step == "" {
			d.Step = diagnose.StepTLS
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		diagnose.Refine(ctx, diagnose.Context{Host: spec.Host, Port: spec.Port, TLS: true, AWS: IsAWS(spec), Recorder: rec}, spec.TLS, d)
		cancel()
	}
	return tlsExit(err, d, spec)
}

// tlsExit is the CLI's error for a TLS diagnosis.
func tlsExit(err error, d *diagnose.Diagnosis, spec *ConnSpec) *Failure {
	addr := "the broker"
	if spec != nil {
		addr = spec.Server
	}
	hint := "step: TLS — the handshake with " + addr + "\ncause: " + d.Cause
	for _, e := range d.Evidence {
		hint += "\nevidence: " + e
	}
	for _, f := range strings.Split(d.Fix, "\n") {
		hint += "\nfix: " + f
	}
	return &Failure{Code: ExitNetwork, Step: "tls", Diagnosis: d.Kind, Err: err, Hint: hint}
}

// recheckTLS connects again and waits for the server's verdict on the client certificate
// (diagnose.Recheck), for a TLS 1.3 connection that was closed without an alert after CONNECT:
// the rejection of a client certificate races the CONNECT and shows as a reset at random.
func recheckTLS(err error, spec *ConnSpec) *Failure {
	if spec == nil || spec.TLS == nil || spec.TLSFacts == nil || spec.TLSFacts.Rec == nil {
		return nil
	}
	info := spec.TLSFacts.Rec.Info()
	if info.Version != tls.VersionTLS13 || !info.CertificateSent {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := diagnose.Recheck(ctx, diagnose.Context{Host: spec.Host, Port: spec.Port, TLS: true, Recorder: spec.TLSFacts.Rec}, spec.TLS)
	if d == nil {
		return nil
	}
	return tlsExit(err, d, spec)
}
