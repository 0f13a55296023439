package doctorcmd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fennec-mqtt/fennec/diagnose"
	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
	"github.com/fennec-mqtt/fennec/packet"
)

func New(streams cmdutil.IO) *cobra.Command {
	var f cmdutil.ConnFlags
	var noPublish bool
	var hold time.Duration
	var topic, hdrCA, hdrCert, hdrKey string
	cmd := &cobra.Command{
		Use:   "doctor [URL]",
		Short: "Check a connection step by step and explain the first step that fails",
		Long: `doctor connects to a broker one step at a time and stops at the first that fails:

  local      every certificate and key loads, the key matches, the dates fit this clock
  dns        the host name resolves
  tcp        the port accepts a connection (refused, timed out, unreachable told apart)
  tls        the handshake: version, cipher suite, ALPN, the server's chain, whether a client
             certificate was asked for (and from which CAs) and sent
  mqtt       CONNECT and CONNACK, and which identity the broker saw
  roundtrip  subscribe to a test topic, publish to it at QoS 1 and receive it (--no-publish
             skips it)

For the failing step it says the cause in plain words, the evidence, and the fix. Where a cause
is inferred (a broker that closes without saying why) it says so and lists the candidates, most
likely first. --json prints the report with a stable cause ID (see docs/diagnosis.md).

The connection flags are those of pub and sub. --aws (implied by an *.iot.*.amazonaws.com
endpoint) explains failures the way AWS IoT Core causes them: policy, certificate status,
client ID, topic permissions.`,
		Example: `  fennec doctor mqtts://broker.local:8883 --cafile ca.pem --cert dev.pem --key dev-key.pem
  fennec doctor -h abc123-ats.iot.eu-west-1.amazonaws.com --cafile AmazonRootCA1.pem \
      --cert device.pem.crt --key private.pem.key -i my-thing --topic things/my-thing/test
  fennec doctor mqtts://broker.local:8883 --header certs_test.h   # the arrays the firmware loads
  fennec doctor mqtt://localhost --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if f.URL != "" {
					return cmdutil.UsageErrorf("give the broker either as an argument or with -L, not both")
				}
				f.URL = args[0]
				if !strings.Contains(f.URL, "://") {
					f.URL = "mqtt://" + f.URL
				}
			}
			f.DeferTLS = true
			defer func() {
				if f.Capture != nil {
					f.Capture.Finish(streams, f.Quiet)
					f.Capture = nil
				}
			}()
			spec, err := f.BuildSpec(streams, nil)
			if err != nil {
				return err
			}
			tg := diagnose.Target{Host: spec.Host, Port: spec.Port, TLS: spec.TLSOptions != nil, Version: packet.Version(spec.Version),
				ClientID: spec.ClientID, Username: spec.Username, Password: spec.Password, HasPassword: spec.HasPassword,
				AWS: spec.AWS, NoPublish: noPublish, Topic: cmp.Or(topic, f.Topic), Timeout: f.ConnectTimeout, Linger: hold}
			if u, err := url.Parse(spec.Server); err == nil && (u.Scheme == "ws" || u.Scheme == "wss") {
				tg.WebSocket, tg.Path = true, u.EscapedPath()
			}
			if !cmd.Flags().Changed("hold") && f.ClientID != "" {
				// a client ID of the user's may be a device's: hold the connection long enough
				// for the device's reconnect to take it over, so the takeover is named
				tg.Linger = 2 * time.Second
			}
			if f.Capture != nil {
				tg.Dial = f.Capture.Rec.Dial(nil)
			}
			if spec.TLSOptions != nil {
				tg.TLSOptions = *spec.TLSOptions
				tg.TLSOptions.Recorder = nil
			}
			if f.Header != "" {
				note, material, err := cmdutil.HeaderMaterial(f.Header, hdrCA, hdrCert, hdrKey, &tg.TLSOptions)
				if err != nil {
					return err
				}
				tg.Material, tg.MaterialNote = material, note
				if material != nil {
					tg.MaterialNote = "in " + f.Header
				}
			}
			r := diagnose.Run(cmd.Context(), tg)
			code := doctorExit(r)
			if f.JSONOut {
				writeDoctorJSON(streams.Out, r, code)
			} else if !f.Quiet || r.OK() {
				writeDoctor(streams.Out, spec.Server, r)
			}
			if code == cmdutil.ExitOK {
				return nil
			}
			if r.Failed != nil && errors.Is(r.Failed.Err, context.Canceled) {
				return cmdutil.QuietError{Err: context.Canceled}
			}
			return cmdutil.QuietError{Err: &cmdutil.Failure{Code: code, Err: fmt.Errorf("%s: %s", r.Failed.Step, r.Failed.Kind)}}
		},
	}
	f.Register(cmd)
	fs := cmd.Flags()
	fs.DurationVar(&hold, "hold", 0, "keep the connection open this long after the round trip (default 2s with -i: a client with the same ID would take it over)")
	fs.BoolVar(&noPublish, "no-publish", false, "stop after CONNACK: no subscribe and publish round trip")
	fs.StringVarP(&topic, "topic", "t", "", "topic of the round trip (default fennec/doctor/CLIENT_ID)")
	fs.StringVar(&f.Header, "header", "", "take the CA, client certificate and key from a firmware's C header (certs_test.h), byte for byte; arrays are chosen by content when unambiguous")
	fs.StringVar(&hdrCA, "header-ca", "", "the `ARRAY` of --header that holds the CA certificate")
	fs.StringVar(&hdrCert, "header-cert", "", "the `ARRAY` of --header that holds the client certificate")
	fs.StringVar(&hdrKey, "header-key", "", "the `ARRAY` of --header that holds the client key")
	return cmd
}

// doctorExit maps the failed step to the CLI's exit codes: 1 local material, 3 the network
// (DNS, TCP, TLS), 4 a refusal by the broker (MQTT, round trip), 5 a timeout, 130 interrupted.
func doctorExit(r *diagnose.Report) int {
	if r.Failed == nil {
		return cmdutil.ExitOK
	}
	switch r.Failed.Kind {
	case diagnose.CauseCanceled:
		return cmdutil.ExitInterrupted
	case diagnose.CauseTCPTimeout, diagnose.CauseConnackTimeout, diagnose.CauseNoEcho:
		return cmdutil.ExitTimeout
	case diagnose.CauseTLSPort, diagnose.CauseNotMQTT:
		return cmdutil.ExitNetwork
	}
	switch r.Failed.Step {
	case diagnose.StepLocal:
		return cmdutil.ExitError
	case diagnose.StepDNS, diagnose.StepTCP, diagnose.StepTLS, diagnose.StepWebSocket:
		return cmdutil.ExitNetwork
	}
	return cmdutil.ExitRefused
}

func writeDoctor(w io.Writer, server string, r *diagnose.Report) {
	fmt.Fprintf(w, "fennec doctor %s\n", server)
	for _, s := range r.Steps {
		mark := "✔"
		if !s.OK {
			mark = "✘"
		}
		fmt.Fprintf(w, "%s %-9s  %s\n", mark, s.Step, s.Summary)
		for _, f := range s.Facts {
			fmt.Fprintf(w, "               %s\n", f)
		}
	}
	d := r.Failed
	if d == nil {
		fmt.Fprintln(w, "all steps passed")
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "step:     %s\n", d.Step)
	what := "cause:   "
	if d.Inferred {
		what = "inferred:"
	}
	fmt.Fprintf(w, "%s %s\n", what, d.Cause)
	for _, e := range d.Evidence {
		fmt.Fprintf(w, "evidence: %s\n", e)
	}
	for i, c := range d.Candidates {
		fmt.Fprintf(w, "likely %d: %s\n", i+1, c)
	}
	fmt.Fprintf(w, "fix:      %s\n", d.Fix)
	fmt.Fprintf(w, "cause ID: %s (fennec help diagnosis lists them all)\n", d.Kind)
}

func writeDoctorJSON(w io.Writer, r *diagnose.Report, code int) {
	obj := struct {
		*diagnose.Report
		OK       bool   `json:"ok"`
		Failed   string `json:"failed_step,omitempty"`
		ExitCode int    `json:"exit_code"`
	}{Report: r, OK: r.OK(), ExitCode: code}
	if r.Failed != nil {
		obj.Failed = r.Failed.Step
	}
	b, _ := json.Marshal(obj)
	fmt.Fprintf(w, "%s\n", b)
}

func DiagnosisHelp() string {
	return "fennec doctor, and --json of pub and sub, name the cause of a failure with one of these stable\n" +
		"IDs; docs/diagnosis.md gives the evidence and the fix of each:\n\n  " +
		strings.Join(diagnose.Causes(), "\n  ") + "\n"
}
