package cmdutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"syscall"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/awsiot"
	"github.com/fennec-mqtt/fennec/diagnose"
	"github.com/fennec-mqtt/fennec/packet"
)

// Exit codes, documented in `fennec help exit-codes`.
const (
	ExitOK          = 0
	ExitError       = 1
	ExitUsage       = 2
	ExitNetwork     = 3
	ExitRefused     = 4
	ExitTimeout     = 5
	ExitInterrupted = 130
	// ExitSubTimeout is sub's -W running out, mosquitto_sub's exit status for it.
	ExitSubTimeout = 27
)

// UsageError marks a command-line mistake (exit code 2).
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Failure carries an explicit exit code and hint lines (step, cause, fix).
type Failure struct {
	Code int
	Err  error
	Hint string
	Step string // dns, tcp, tls, mqtt, setup
	// Diagnosis is a stable name of the cause for scripts (--json), e.g. "unknown-authority"
	Diagnosis string
}

func (e *Failure) Error() string { return e.Err.Error() }
func (e *Failure) Unwrap() error { return e.Err }

// ExitCode maps an error to the process exit code.
func ExitCode(err error) int {
	var ee *Failure
	var ue UsageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		return ee.Code
	case errors.As(err, &ue):
		return ExitUsage
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.Is(err, context.DeadlineExceeded):
		return ExitTimeout
	case strings.HasPrefix(err.Error(), "unknown command"), strings.HasPrefix(err.Error(), "accepts "),
		strings.HasPrefix(err.Error(), "requires "), strings.HasPrefix(err.Error(), "unknown flag"),
		strings.HasPrefix(err.Error(), "unknown shorthand flag"), strings.HasPrefix(err.Error(), "invalid argument"),
		strings.HasPrefix(err.Error(), "required flag"):
		return ExitUsage
	}
	return ExitError
}

// libraryPrefix matches the package prefixes of the library's error messages, which stack up as
// errors wrap errors.
var libraryPrefix = regexp.MustCompile(`(^|: )(fennec|mqttconn|session|packet|topic|pki): `)

// errorText is err's message for a person: the library's package prefixes ("fennec: ",
// "pki: ", ...) are dropped; the CLI prints its own "fennec: " once.
func errorText(err error) string {
	return libraryPrefix.ReplaceAllString(err.Error(), "$1")
}

// headline is the first line of a failure for a person. A connection that failed before TLS
// says so in the words of the operating system ("cannot connect to HOST:PORT: connection
// refused") rather than in the stacked wording of the dialer; everything else is errorText.
// --json keeps the full text.
func headline(err error) string {
	var ce *fennec.ConnectError
	if errors.As(err, &ce) && (ce.Phase == fennec.PhaseDNS || ce.Phase == fennec.PhaseTCP) {
		var de *net.DNSError
		var se *os.SyscallError
		switch {
		case errors.As(err, &de):
			return fmt.Sprintf("cannot resolve %q: %s", de.Name, de.Err)
		case errors.As(err, &se):
			return fmt.Sprintf("cannot connect to %s: %v", ce.Addr, se.Err)
		}
	}
	return errorText(err)
}

// LostText says why an established connection was lost, once: the client's error is
// "fennec: connection lost: CAUSE", which the CLI would otherwise print after its own
// "connection lost: ".
func LostText(err error) string {
	s := errorText(err)
	if !strings.HasPrefix(s, "connection lost") {
		s = "connection lost: " + s
	}
	return s
}

func PrintError(w io.Writer, err error) {
	fmt.Fprintf(w, "fennec: error: %s\n", headline(err))
	for _, h := range HintLines(err) {
		fmt.Fprintf(w, "hint: %s\n", h)
	}
	if ExitCode(err) == ExitUsage {
		fmt.Fprintln(w, "hint: run the command with --help for its flags and examples")
	}
}

func HintLines(err error) []string {
	var ee *Failure
	if errors.As(err, &ee) && ee.Hint != "" {
		return strings.Split(ee.Hint, "\n")
	}
	return nil
}

// PrintJSONError writes the failure as one JSON object, for --json.
func PrintJSONError(w io.Writer, err error) {
	obj := map[string]any{"error": errorText(err), "exit_code": ExitCode(err)}
	var ee *Failure
	if errors.As(err, &ee) && ee.Step != "" {
		obj["step"] = ee.Step
	}
	if ee != nil && ee.Diagnosis != "" {
		obj["diagnosis"] = ee.Diagnosis
	}
	if h := HintLines(err); len(h) > 0 {
		obj["hints"] = h
	}
	b, _ := json.Marshal(obj)
	fmt.Fprintf(w, "%s\n", b)
}

// Explain turns a failure while talking to the broker into an error with an exit code and hint
// lines naming the step that failed (DNS, TCP, TLS, MQTT), the cause in plain words and the fix.
func Explain(err error, spec *ConnSpec, during string) error {
	if err == nil {
		return nil
	}
	var ee *Failure
	var ue UsageError
	if errors.As(err, &ee) || errors.As(err, &ue) {
		return err
	}
	e := ExplainClientError(err, spec)
	if e == nil {
		e = explainNet(err, spec, during)
	}
	if e == nil {
		e = &Failure{Code: ExitError, Err: err}
	}
	if e.Diagnosis == "" && spec != nil {
		// the cause ID fennec doctor would give (--json "diagnosis")
		c := diagnose.Context{Host: spec.Host, Port: spec.Port, TLS: spec.TLS != nil, ClientID: spec.ClientID, Username: spec.Username, Version: packet.Version(spec.Version)}
		if spec.TLSFacts != nil {
			c.Recorder = spec.TLSFacts.Rec
		}
		if d := diagnose.Explain(err, c); d != nil && d.Kind != diagnose.CauseUnknown && (e.Step == "" || e.Step == d.Step) {
			e.Diagnosis = d.Kind
		}
	}
	return e
}

// explainNet classifies standard-library network and TLS errors.
func explainNet(err error, spec *ConnSpec, during string) *Failure {
	addr := "the broker"
	if spec != nil {
		addr = net.JoinHostPort(spec.Host, fmt.Sprint(spec.Port))
	}
	mk := func(code int, step, hint string) *Failure {
		return &Failure{Code: code, Err: err, Step: step, Hint: hint}
	}
	var dnsErr *net.DNSError
	var uaErr x509.UnknownAuthorityError
	var hnErr x509.HostnameError
	var ciErr x509.CertificateInvalidError
	var alert tls.AlertError
	var recErr tls.RecordHeaderError
	var verr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, context.Canceled):
		return &Failure{Code: ExitInterrupted, Err: err}
	case errors.As(err, &dnsErr):
		h := fmt.Sprintf("step: DNS — looking up %q failed", dnsErr.Name)
		if dnsErr.IsNotFound {
			h += "\ncause: the name does not exist"
		} else if dnsErr.IsTimeout {
			h += "\ncause: the DNS server did not answer in time"
		} else {
			h += "\ncause: " + dnsErr.Err
		}
		h += "\nfix: check the host name given with -h or -L"
		if awsiot.IsEndpoint(dnsErr.Name) {
			h += "; for AWS IoT Core use your account's endpoint (`aws iot describe-endpoint --endpoint-type iot:Data-ATS`)"
		}
		return mk(ExitNetwork, "dns", h)
	case errors.Is(err, syscall.ECONNREFUSED):
		return mk(ExitNetwork, "tcp", fmt.Sprintf("step: TCP — connecting to %s\ncause: nothing is listening on that port (connection refused)\nfix: check that the broker runs and the port: MQTT is 1883, MQTT over TLS 8883 (-p)", addr))
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return mk(ExitNetwork, "tcp", fmt.Sprintf("step: TCP — connecting to %s\ncause: no route to the host\nfix: check the address and this machine's network", addr))
	case errors.As(err, &recErr):
		return mk(ExitNetwork, "tls", fmt.Sprintf("step: TLS — the handshake with %s\ncause: the server did not answer with TLS: this port speaks plain MQTT (or another protocol)\nfix: use the broker's TLS port (usually 8883), or drop the TLS flags and use mqtt:// for a plain port", addr))
	case errors.As(err, &uaErr), errors.As(err, &verr) && errors.As(verr.Err, &uaErr):
		issuer := ""
		if uaErr.Cert != nil {
			issuer = uaErr.Cert.Issuer.String()
		}
		h := fmt.Sprintf("step: TLS — verifying the server's certificate\ncause: it is signed by a CA you did not give (issuer: %q)", issuer)
		h += "\nfix: pass that CA with --cafile"
		if IsAWS(spec) {
			h += " (AWS IoT Core: AmazonRootCA1.pem from https://www.amazontrust.com/repository/)"
		}
		return mk(ExitNetwork, "tls", h)
	case errors.As(err, &hnErr):
		names := ""
		if hnErr.Certificate != nil {
			names = strings.Join(append(append([]string{}, hnErr.Certificate.DNSNames...), ipStrings(hnErr.Certificate)...), ", ")
		}
		return mk(ExitNetwork, "tls", fmt.Sprintf("step: TLS — checking the server's name\ncause: the certificate is for %q, not for %q\nfix: connect with a name the certificate holds, or give it with --servername", names, hnErr.Host))
	case errors.As(err, &ciErr):
		return mk(ExitNetwork, "tls", fmt.Sprintf("step: TLS — verifying the server's certificate\ncause: %v\nfix: if it is expired or not yet valid, check this machine's clock first; otherwise the broker needs a new certificate", ciErr))
	case errors.As(err, &alert):
		return mk(ExitNetwork, "tls", tlsAlertHint(uint8(alert), spec))
	case strings.Contains(err.Error(), "tls: ") && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)):
		return mk(ExitNetwork, "tls", fmt.Sprintf("step: TLS — the handshake with %s\ncause: the server closed the connection during the handshake\nfix: check the TLS version (--tls-version) and that the port speaks TLS; a server that requires a client certificate may also close instead of sending an alert", addr))
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return mk(ExitTimeout, "", fmt.Sprintf("cause: %s did not answer in time (%s)\nfix: check that the host and port are right and no firewall drops the packets; --connect-timeout and -W set the limits", addr, during))
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, syscall.EPIPE):
		return mk(ExitNetwork, "tcp", fmt.Sprintf("step: %s\ncause: the server closed the connection\nfix: run again with -d to see the last packets exchanged", during))
	}
	return nil
}

func tlsAlertHint(alert uint8, spec *ConnSpec) string {
	certGiven := spec != nil && spec.ClientCert
	requested, sent, cas := false, false, []string(nil)
	if spec != nil {
		requested, sent, cas = spec.TLSFacts.Snapshot()
	}
	h := "step: TLS — the server refused the handshake (alert " + tls.AlertError(alert).Error() + ")\n"
	switch alert {
	case 116: // certificate_required (TLS 1.3)
		h += "cause: the server requires a client certificate and none was sent"
		if len(cas) > 0 {
			h += "; it accepts certificates issued by: " + strings.Join(cas, "; ")
		}
		h += "\nfix: give your device certificate and key with --cert and --key"
	case 42, 43, 44, 45, 46, 48, 49: // bad/unsupported/revoked/expired/unknown certificate, unknown CA, access denied
		if !certGiven && requested {
			h += "cause: the server asked for a client certificate and none was configured\nfix: give --cert and --key"
		} else if sent {
			h += "cause: the server rejected our client certificate (not issued by a CA it trusts, expired, or not registered)\nfix: check the certificate with `fennec cert verify --ca CA --cert CERT`; on AWS IoT the certificate must be registered and ACTIVE"
		} else {
			h += "cause: the server rejected a certificate\nfix: check --cafile, --cert and --key"
		}
	case 70: // protocol_version
		h += "cause: the server does not speak the TLS version we offered\nfix: try --tls-version tlsv1.2 (or tlsv1.3)"
	case 40, 71: // handshake_failure, insufficient_security
		h += "cause: client and server share no TLS version or cipher suite, or the server wanted a client certificate\nfix: try --tls-version tlsv1.2; give --cert/--key if the server uses mutual TLS"
	case 112: // unrecognized_name
		h += "cause: the server does not know the name we asked for (SNI)\nfix: connect with the broker's real host name or set --servername"
	case 120: // no_application_protocol
		h += "cause: the server supports none of the ALPN protocols offered with --tls-alpn\nfix: AWS IoT on port 443 needs --tls-alpn x-amzn-mqtt-ca; on 8883 give none"
	default:
		h += "cause: the server ended the handshake\nfix: run with -d to see the TLS facts"
	}
	return h
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// IsAWS reports whether the connection is to AWS IoT Core or its emulation: --aws, a profile
// with aws = true, or an AWS IoT endpoint (awsiot.IsEndpoint).
func IsAWS(spec *ConnSpec) bool { return spec != nil && (spec.AWS || awsiot.IsEndpoint(spec.Host)) }

func ipStrings(c *x509.Certificate) []string {
	var out []string
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

func TrimPKI(s string) string { return strings.TrimPrefix(s, "pki: ") }

// QuietError keeps the exit code of err but prints nothing.
type QuietError struct{ Err error }

func (q QuietError) Error() string { return q.Err.Error() }

func (q QuietError) Unwrap() error { return q.Err }
