package cmdutil

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fennec-mqtt/fennec/awsiot"
	"github.com/fennec-mqtt/fennec/pki"
)

// TLSFacts gives access to what the TLS layer saw during the handshake that the connection
// state does not show: whether the server asked for a client certificate, which CAs it
// accepts, and whether we sent one. --debug prints them; the hints use them.
type TLSFacts struct {
	Rec      *pki.HandshakeRecorder
	insecure bool
}

func (f *TLSFacts) Snapshot() (requested, sent bool, cas []string) {
	if f == nil || f.Rec == nil {
		return false, false, nil
	}
	info := f.Rec.Info()
	return info.CertificateRequested, info.CertificateSent, info.AcceptableCAs
}

// buildTLSConfig turns the TLS flags into a *tls.Config for a client connecting to host, with
// the pki package: certificates and keys are recognised by content (PEM, DER, C arrays, ...),
// and every loading error names its cause.
func buildTLSConfig(f *ConnFlags, host string, facts *TLSFacts) (*tls.Config, error) {
	opts, err := tlsOptions(f, host)
	if err != nil {
		return nil, err
	}
	facts.Rec, facts.insecure = opts.Recorder, f.insecure
	cfg, err := pki.ClientConfig(opts)
	if err != nil {
		return nil, tlsSetupError(err)
	}
	return cfg, nil
}

// tlsOptions turns the TLS flags into the options of pki.ClientConfig, without loading anything.
func tlsOptions(f *ConnFlags, host string) (pki.ClientOptions, error) {
	opts := pki.ClientOptions{
		ServerName:         host,
		NextProtos:         f.alpn,
		InsecureSkipVerify: f.insecure,
		KeyLogFile:         f.keylog,
		Recorder:           &pki.HandshakeRecorder{},
		SystemRoots:        f.osCerts,
		Passphrase:         pki.PassphraseFromEnv("FENNEC_KEY_PASSPHRASE"),
	}
	if f.servername != "" {
		opts.ServerName = f.servername
	}
	if f.Capture != nil {
		opts.KeyLogWriter = f.Capture.Rec.KeyLog()
	}
	switch strings.ToLower(f.tlsVersion) {
	case "":
	case "tlsv1.3", "1.3", "tls1.3":
		opts.MinVersion, opts.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
	case "tlsv1.2", "1.2", "tls1.2":
		opts.MinVersion, opts.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	case "tlsv1.1", "tlsv1", "tlsv1.0", "1.1", "1.0":
		return opts, UsageErrorf("--tls-version %s: TLS below 1.2 is broken and refused; use tlsv1.2 or tlsv1.3", f.tlsVersion)
	default:
		return opts, UsageErrorf("--tls-version %q: use tlsv1.3 or tlsv1.2", f.tlsVersion)
	}
	if f.cafile != "" {
		opts.CAs = append(opts.CAs, pki.FileSource(f.cafile))
	}
	if f.capath != "" {
		entries, err := os.ReadDir(f.capath)
		if err != nil {
			return opts, &Failure{Code: ExitError, Err: fmt.Errorf("--capath: %w", err)}
		}
		n := 0
		for _, e := range entries {
			name := filepath.Join(f.capath, e.Name())
			if e.IsDir() {
				continue
			}
			if _, err := pki.LoadCAs(pki.FileSource(name)); err == nil {
				opts.CAs = append(opts.CAs, pki.FileSource(name))
				n++
			}
		}
		if n == 0 {
			return opts, &Failure{Code: ExitError, Step: "setup", Err: fmt.Errorf("--capath %s: no CA certificate in the directory", f.capath),
				Hint: "step: TLS setup (before connecting)\ncause: none of the files in the directory holds a CA certificate\nfix: put the CA certificate(s) there, or use --cafile FILE"}
		}
	}
	if len(opts.CAs) == 0 && !f.osCerts && awsiot.IsEndpoint(host) {
		// AWS IoT Core's endpoints are verified against the Amazon roots awsiot embeds, as the
		// package does: a device's or a container's system store may lack them.
		opts.CAs = []pki.Source{pki.BytesSource(awsiot.RootCA1PEM, "Amazon Root CA 1 (embedded)"), pki.BytesSource(awsiot.RootCA3PEM, "Amazon Root CA 3 (embedded)")}
	}
	if f.osCerts && len(opts.CAs) == 0 {
		opts.SystemRoots = false // no CAs given: ClientConfig uses the system roots
	}
	if f.cert != "" {
		opts.Cert, opts.Key = pki.FileSource(f.cert), pki.FileSource(f.key)
	}
	return opts, nil
}

// tlsSetupError explains a certificate or key that could not be loaded, before any connection.
func tlsSetupError(err error) error {
	hint := "step: TLS setup (before connecting)\ncause: a file given with --cafile, --capath, --cert or --key cannot be used as it is (the error says why)"
	fix := pki.Hint(err)
	switch {
	case fix != "":
	case errors.Is(err, os.ErrNotExist):
		fix = "check the path given to --cafile, --cert or --key"
	case errors.Is(err, pki.ErrNeedPassphrase):
		fix = "put the key's passphrase in the environment variable FENNEC_KEY_PASSPHRASE"
	default:
		fix = "`fennec cert check FILE` says what each file holds and what is wrong with it"
	}
	lines := strings.Split(fix, "\n")
	hint += "\nfix: " + strings.Join(lines, "\nfix: ")
	return &Failure{Code: ExitError, Step: "setup", Err: fmt.Errorf("loading TLS certificates: %w", err), Hint: hint}
}
