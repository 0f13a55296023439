package provisioncmd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/awsiot"
	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
	"github.com/fennec-mqtt/fennec/pki"
)

type provisionOptions struct {
	conn     cmdutil.ConnFlags
	template string
	params   []string
	outDir   string
	awsKeys  bool
	force    bool
	wait     time.Duration
}

func New(streams cmdutil.IO) *cobra.Command {
	o := &provisionOptions{}
	cmd := &cobra.Command{
		Use:   "provision --template NAME [--param KEY=VALUE]... [connection flags with the claim certificate]",
		Short: "AWS IoT Fleet Provisioning by claim: get a device certificate and register the thing",
		Long: `Fleet Provisioning by claim, over MQTT: connected with a claim certificate (--cert/--key, or a
profile), fennec gets a certificate for this device and registers its thing with the provisioning
template --template and its parameters. By default the key pair is made here and only a CSR is
sent, so the private key never crosses the network; --aws-keys has AWS make the key pair
(CreateKeysAndCertificate) instead.

The certificate and key are written to --out-dir as THING.pem and THING-key.pem (the key with
mode 0600; each file written to a temporary file and renamed, so a crash leaves no half file).
An existing key is not replaced without --force.`,
		Example: `  fennec provision --profile aws-claim --template fleet --param SerialNumber=1234 --out-dir ./device
  fennec provision --aws -h PREFIX-ats.iot.eu-west-1.amazonaws.com --cert claim.pem --key claim-key.pem \
      --template fleet --param SerialNumber=1234`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return o.run(c.Context(), streams) },
	}
	o.conn.Register(cmd)
	fs := cmd.Flags()
	fs.StringVar(&o.template, "template", "", "the provisioning template's name")
	fs.StringArrayVar(&o.params, "param", nil, "KEY=VALUE template parameter (repeatable)")
	fs.StringVar(&o.outDir, "out-dir", ".", "directory for THING.pem and THING-key.pem")
	fs.BoolVar(&o.awsKeys, "aws-keys", false, "have AWS make the key pair (CreateKeysAndCertificate) instead of sending a CSR")
	fs.BoolVar(&o.force, "force", false, "replace an existing certificate and key")
	fs.DurationVar(&o.wait, "wait", 20*time.Second, "how long to wait for each answer")
	return cmd
}

func (o *provisionOptions) run(ctx context.Context, streams cmdutil.IO) (err error) {
	if o.template == "" {
		return o.conn.Report(streams, cmdutil.UsageErrorf("--template NAME is required"))
	}
	params := map[string]string{}
	for _, p := range o.params {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return o.conn.Report(streams, cmdutil.UsageErrorf("--param %q: KEY=VALUE", p))
		}
		params[k] = v
	}
	if o.conn.ClientID == "" {
		var b [4]byte
		rand.Read(b[:])
		o.conn.ClientID = "provision-" + hex.EncodeToString(b[:])
	}
	return cmdutil.WithThing(ctx, streams, &o.conn, "claim", func(ctx context.Context, c *fennec.Client, _ string) error {
		ctx, cancel := context.WithTimeout(ctx, o.wait)
		defer cancel()
		res, err := awsiot.NewProvisioner(c).Provision(ctx, o.template, params, o.awsKeys)
		if err != nil {
			return provisionError(err)
		}
		certFile := filepath.Join(o.outDir, res.ThingName+".pem")
		keyFile := filepath.Join(o.outDir, res.ThingName+"-key.pem")
		if !o.force {
			for _, f := range []string{certFile, keyFile} {
				if _, err := os.Stat(f); err == nil {
					return &cmdutil.Failure{Code: cmdutil.ExitError, Err: fmt.Errorf("%s exists; the thing %s was registered, but its new certificate is not written", f, res.ThingName),
						Hint: "fix: run again with --force to replace it, or with another --out-dir"}
				}
			}
		}
		if err := os.MkdirAll(o.outDir, 0o700); err != nil {
			return err
		}
		if err := pki.WriteFile(keyFile, res.PrivateKeyPEM, 0o600); err != nil {
			return err
		}
		if err := pki.WriteFile(certFile, res.CertificatePEM, 0o644); err != nil {
			return err
		}
		if o.conn.JSONOut {
			return cmdutil.PrintJSON(streams, map[string]any{"thing": res.ThingName, "certificate_id": res.CertificateID, "certificate": certFile, "key": keyFile,
				"device_configuration": res.DeviceConfiguration, "key_made_by": map[bool]string{true: "aws", false: "device"}[o.awsKeys]}, true)
		}
		fmt.Fprintf(streams.Out, "thing        %s\ncertificate  %s (id %s)\nkey          %s (mode 0600, made %s)\n", res.ThingName, certFile, res.CertificateID, keyFile,
			map[bool]string{true: "by AWS", false: "here; only a CSR was sent"}[o.awsKeys])
		for k, v := range res.DeviceConfiguration {
			fmt.Fprintf(streams.Out, "config       %s = %s\n", k, v)
		}
		fmt.Fprintf(streams.Out, "connect as the thing with: --cert %s --key %s -i %s\n", cmdutil.ShellQuote(certFile), cmdutil.ShellQuote(keyFile), res.ThingName)
		return nil
	})
}

func provisionError(err error) error {
	var pe *awsiot.ProvisioningError
	switch {
	case errors.As(err, &pe):
		hint := ""
		switch pe.ErrorCode {
		case "InvalidParameters":
			hint = "cause: the template needs parameters this request lacks or that make no valid thing name\nfix: give each with --param KEY=VALUE"
		case "NotFound":
			hint = "cause: no provisioning template of that name\nfix: check --template (aws iot list-provisioning-templates)"
		case "InvalidCertificateOwnershipToken":
			hint = "cause: the certificate's ownership token is unknown, used or expired\nfix: run fennec provision again"
		case "InvalidCsr":
			hint = "cause: the certificate signing request was refused"
		}
		return &cmdutil.Failure{Code: cmdutil.ExitRefused, Err: err, Step: "provision", Hint: hint}
	case errors.Is(err, context.DeadlineExceeded):
		return &cmdutil.Failure{Code: cmdutil.ExitTimeout, Err: err, Step: "provision", Hint: "cause: no answer in time\nfix: the claim certificate's policy must allow iot:Publish, iot:Subscribe and iot:Receive on $aws/certificates/create/* (or create-from-csr/*) and $aws/provisioning-templates/TEMPLATE/provision/*"}
	}
	return cmdutil.Explain(err, nil, "provision")
}
