package cli

import (
	"strings"

	"github.com/fennec-mqtt/fennec/diagnose"
	"github.com/fennec-mqtt/fennec/pki"
)

// explainTLS explains a failed TLS handshake (or a connection the server dropped right after
// it, which is how TLS 1.3 servers reject a client certificate) with the pki package's
// diagnosis. It returns nil when the pki package has no diagnosis.
func explainTLS(err error, spec *connSpec) *exitError {
	var rec *pki.HandshakeRecorder
	if spec != nil && spec.tlsFacts != nil {
		rec = spec.tlsFacts.rec
	}
	d := diagnose.ExplainHandshake(err, rec)
	if d == nil {
		return nil
	}
	addr := "the broker"
	if spec != nil {
		addr = spec.Server
	}
	hint := "step: TLS — the handshake with " + addr + "\ncause: " + d.Cause
	for _, f := range strings.Split(d.Fix, "\n") {
		hint += "\nfix: " + f
	}
	return &exitError{code: ExitNetwork, step: "tls", diagnosis: d.Kind, err: err, hint: hint}
}
