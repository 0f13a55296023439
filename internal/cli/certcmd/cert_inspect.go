package certcmd

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
	"github.com/fennec-mqtt/fennec/pki"
	"github.com/fennec-mqtt/fennec/pki/certcheck"
	"github.com/spf13/cobra"
)

type certInspectOptions struct {
	json bool
	pass passFlags
}

func newCertInspectCmd(streams cmdutil.IO) *cobra.Command {
	o := &certInspectOptions{}
	cmd := &cobra.Command{
		Use:   "inspect FILE...",
		Short: "Show what certificate and key files hold",
		Long: `inspect shows every object in each file: for a certificate its subject, issuer, subject
alternative names, validity, key type and size, CA flag, fingerprints and SPKI pin; for a key its
type and which certificate it matches; and whether a chain file lists its certificates in order
(leaf first). Objects that cannot be used are shown with the reason.

The exit status is 0 when every file was read and something was recognised in it, 1 otherwise;
use fennec cert check to judge whether the contents are usable.`,
		Example: `  fennec cert inspect server.pem
  fennec cert inspect certs_test.h               # every array and string in a C header
  fennec cert inspect --json client.crt | jq -r '.[0].objects[0].certificate.not_after'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(streams, args) },
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON instead of text")
	o.pass.register(cmd)
	return cmd
}

type inspectObjectJSON struct {
	Name        string              `json:"name"`
	Kind        pki.Kind            `json:"kind"`
	Container   string              `json:"container"`
	Encoding    string              `json:"encoding,omitempty"`
	OK          bool                `json:"ok"`
	Problem     string              `json:"problem,omitempty"`
	Hint        string              `json:"hint,omitempty"`
	Warnings    []string            `json:"warnings,omitempty"`
	Certificate *certcheck.CertInfo `json:"certificate,omitempty"`
	Key         string              `json:"key,omitempty"`
	Matches     []string            `json:"matches,omitempty"`
}

type inspectFileJSON struct {
	File       string              `json:"file"`
	Objects    []inspectObjectJSON `json:"objects"`
	ChainNotes []string            `json:"chain_notes,omitempty"`
	Error      string              `json:"error,omitempty"`
}

func (o *certInspectOptions) run(streams cmdutil.IO, files []string) error {
	pass := o.pass.source(streams)
	var out []inspectFileJSON
	var firstErr error
	for _, file := range files {
		objs, err := parseCertFile(file, pass)
		fj := inspectFileJSON{File: file}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			fj.Error = err.Error()
			out = append(out, fj)
			if !o.json {
				fmt.Fprintf(streams.Out, "%s: %v\n", file, err)
				if h := cmdutil.HintLines(err); len(h) > 0 {
					fmt.Fprintf(streams.Out, "  hint: %s\n", strings.Join(h, "\n  hint: "))
				}
			}
			continue
		}
		var certs []*x509.Certificate
		for i := range objs {
			obj := &objs[i]
			oj := inspectObjectJSON{Name: obj.Name, Kind: obj.Kind, Container: string(obj.Container), Encoding: obj.Encoding, OK: obj.OK()}
			if obj.Err != nil {
				oj.Problem, oj.Hint = cmdutil.TrimPKI(obj.Err.Error()), pki.Hint(obj.Err)
			}
			for _, w := range obj.Warnings {
				oj.Warnings = append(oj.Warnings, cmdutil.TrimPKI(w.Error()))
			}
			if obj.Cert != nil {
				ci := certcheck.Inspect(obj.Cert)
				oj.Certificate = &ci
				if obj.Err == nil {
					certs = append(certs, obj.Cert)
				}
			}
			if obj.Key != nil {
				oj.Key = pki.KeyDescription(obj.Key.Public())
				for _, c := range objs {
					if c.Cert != nil && pki.KeyMatches(c.Cert.PublicKey, obj.Key) {
						oj.Matches = append(oj.Matches, c.Name)
					}
				}
			} else if obj.PublicKey != nil && obj.Cert == nil {
				oj.Key = pki.KeyDescription(obj.PublicKey)
			}
			fj.Objects = append(fj.Objects, oj)
		}
		if len(certs) > 1 && !certs[0].IsCA {
			fj.ChainNotes = certcheck.ChainOrder(certs)
		}
		out = append(out, fj)
		if !o.json {
			printInspect(streams.Out, fj)
		}
	}
	if o.json {
		enc := json.NewEncoder(streams.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	if firstErr != nil {
		return cmdutil.QuietError{Err: firstErr} // already reported with its file
	}
	return nil
}

func printInspect(w io.Writer, f inspectFileJSON) {
	n := len(f.Objects)
	fmt.Fprintf(w, "%s: %d object%s\n", f.File, n, plural(n))
	for i, o := range f.Objects {
		enc := string(o.Container)
		if o.Encoding != "" {
			enc += ", " + o.Encoding
		}
		fmt.Fprintf(w, "[%d] %s %s (%s)\n", i+1, o.Kind, o.Name, enc)
		if c := o.Certificate; c != nil {
			row := func(k, v string) { fmt.Fprintf(w, "    %-14s %s\n", k+":", v) }
			row("subject", c.Subject)
			row("issuer", c.Issuer)
			row("serial", c.Serial)
			row("valid", validityLine(c.NotBefore, c.NotAfter, time.Now()))
			var sans []string
			for _, d := range c.DNSNames {
				sans = append(sans, "DNS:"+d)
			}
			for _, ip := range c.IPAddresses {
				sans = append(sans, "IP:"+ip)
			}
			for _, e := range c.EmailAddresses {
				sans = append(sans, "email:"+e)
			}
			for _, u := range c.URIs {
				sans = append(sans, "URI:"+u)
			}
			if len(sans) == 0 {
				sans = []string{"(none: not valid for any host name)"}
			}
			row("SANs", strings.Join(sans, ", "))
			row("key", c.Key)
			row("signature", c.SignatureAlgorithm)
			ca := "no"
			if c.IsCA {
				ca = "yes"
				if c.MaxPathLen != nil {
					ca += fmt.Sprintf(" (path length %d)", *c.MaxPathLen)
				}
			}
			if c.SelfSigned {
				ca += ", self-signed"
			}
			row("CA", ca)
			if len(c.KeyUsage) > 0 {
				row("key usage", strings.Join(c.KeyUsage, ", "))
			}
			if len(c.ExtKeyUsage) > 0 {
				row("ext key usage", strings.Join(c.ExtKeyUsage, ", "))
			}
			row("SHA-256", c.SHA256)
			row("SHA-1", c.SHA1)
			row("SPKI pin", c.SPKIPin)
		}
		if o.Key != "" {
			line := o.Key
			if o.Kind == pki.KindPrivateKey {
				if len(o.Matches) > 0 {
					line += "; matches " + strings.Join(o.Matches, ", ")
				} else {
					line += "; matches no certificate in this file"
				}
			}
			fmt.Fprintf(w, "    %-14s %s\n", "key:", line)
		}
		if o.Problem != "" {
			fmt.Fprintf(w, "    problem:       %s\n", o.Problem)
			for _, h := range strings.Split(o.Hint, "\n") {
				if h != "" {
					fmt.Fprintf(w, "    hint:          %s\n", h)
				}
			}
		}
		for _, wn := range o.Warnings {
			fmt.Fprintf(w, "    warning:       %s\n", wn)
		}
	}
	for _, n := range f.ChainNotes {
		fmt.Fprintf(w, "chain: %s\n", n)
	}
}

func validityLine(nb, na, now time.Time) string {
	s := nb.Format(time.RFC3339) + " to " + na.Format(time.RFC3339)
	switch {
	case now.After(na):
		s += fmt.Sprintf(" (EXPIRED %d days ago)", int(now.Sub(na).Hours()/24))
	case now.Before(nb):
		s += " (NOT YET VALID)"
	default:
		s += fmt.Sprintf(" (%d days left)", int(na.Sub(now).Hours()/24))
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

type certCheckOptions struct {
	ca   string
	host string
	json bool
	pass passFlags
}

func newCertCheckCmd(streams cmdutil.IO) *cobra.Command {
	o := &certCheckOptions{}
	cmd := &cobra.Command{
		Use:   "check FILE... [--ca CA]",
		Short: "Check that certificates and keys are usable, and say exactly why not",
		Long: `check examines every object in the files given (PEM, DER, C headers, ...) and reports for each
whether it is usable or exactly why not; which private key matches which certificate; and whether
the certificates chain to the CA (--ca, or the CA certificates found in the files themselves, as in
a certs_test.h holding CA, device certificate and key).

The exit status is 0 when all is well and 1 when any problem was found.`,
		Example: `  fennec cert check certs_test.h
  fennec cert check device.pem.crt private.pem.key --ca AmazonRootCA1.pem
  fennec cert check server.pem --ca ca.pem --host broker.local
  fennec cert check --json bundle.pem`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(streams, args) },
	}
	cmd.Flags().StringVar(&o.ca, "ca", "", "check that the certificates chain to the CA certificate(s) in `FILE`")
	cmd.Flags().StringVar(&o.host, "host", "", "check that the certificates are valid for server `NAME`")
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON instead of text")
	o.pass.register(cmd)
	return cmd
}

func (o *certCheckOptions) run(streams cmdutil.IO, files []string) error {
	pass := o.pass.source(streams)
	var all []pki.Object
	for _, f := range files {
		objs, err := parseCertFile(f, pass)
		if err != nil {
			return err
		}
		all = append(all, objs...)
	}
	opts := certcheck.CheckOptions{Host: o.host}
	if o.ca != "" {
		caObjs, err := parseCertFile(o.ca, nil)
		if err != nil {
			return err
		}
		cas, err := pki.CACertificates(caObjs, o.ca)
		if err != nil {
			return certError(err)
		}
		opts.CAs = cas
	}
	rep := certcheck.Check(all, opts)
	if o.json {
		enc := json.NewEncoder(streams.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printCheck(streams.Out, rep)
	}
	if !rep.OK {
		return cmdutil.QuietError{Err: &cmdutil.Failure{Code: cmdutil.ExitError, Err: fmt.Errorf("%s: problems found", strings.Join(files, ", "))}}
	}
	return nil
}

func printCheck(w io.Writer, r certcheck.CheckReport) {
	for _, o := range r.Objects {
		mark := "ok  "
		if !o.OK {
			mark = "FAIL"
		}
		enc := o.Container
		if o.Encoding != "" {
			enc += ", " + o.Encoding
		}
		fmt.Fprintf(w, "%s %s: %s (%s)\n", mark, o.Name, o.Description, enc)
		if o.Problem != "" {
			fmt.Fprintf(w, "     problem: %s\n", o.Problem)
			for _, h := range strings.Split(o.Hint, "\n") {
				if h != "" {
					fmt.Fprintf(w, "     hint: %s\n", h)
				}
			}
		}
		for _, wn := range o.Warnings {
			if wn != o.Problem {
				fmt.Fprintf(w, "     warning: %s\n", wn)
			}
		}
	}
	for _, p := range r.Pairs {
		if p.Match {
			fmt.Fprintf(w, "ok   key %s matches certificate %s\n", p.Key, p.Cert)
		} else {
			fmt.Fprintf(w, "FAIL key %s does not match certificate %s\n", p.Key, p.Cert)
			if p.Problem != "" {
				fmt.Fprintf(w, "     problem: %s\n", p.Problem)
			}
			if p.Hint != "" {
				fmt.Fprintf(w, "     hint: %s\n", p.Hint)
			}
		}
	}
	for _, c := range r.Chains {
		if c.Note != "" {
			fmt.Fprintf(w, "note %s: %s\n", c.Cert, c.Note)
			continue
		}
		if c.OK {
			fmt.Fprintf(w, "ok   %s chains to %s\n", c.Cert, c.CA)
			continue
		}
		fmt.Fprintf(w, "FAIL %s does not chain to %s\n     problem: %s\n", c.Cert, c.CA, c.Problem)
		for _, h := range strings.Split(c.Hint, "\n") {
			if h != "" {
				fmt.Fprintf(w, "     hint: %s\n", h)
			}
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if r.OK {
		fmt.Fprintln(w, "all well")
	} else {
		fmt.Fprintln(w, "problems found")
	}
}
