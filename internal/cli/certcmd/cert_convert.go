package certcmd

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
	"github.com/fennec-mqtt/fennec/pki"
	"github.com/fennec-mqtt/fennec/pki/certcheck"
	"github.com/fennec-mqtt/fennec/pki/devpki"
	"github.com/spf13/cobra"
)

type certConvertOptions struct {
	to   string
	out  string
	name string
	pass passFlags
}

func newCertConvertCmd(streams cmdutil.IO) *cobra.Command {
	o := &certConvertOptions{}
	cmd := &cobra.Command{
		Use:   "convert --to pem|der|c|go IN [-o OUT] [--name NAME]",
		Short: "Convert certificates and keys between PEM, DER, C arrays and Go byte slices",
		Long: `convert reads IN in any form (PEM, DER, base64, a C header, a Go slice) and writes it as:

  pem   PEM text, one block per object (keys keep their PKCS#8, PKCS#1 or SEC1 encoding;
        an encrypted key is written decrypted)
  der   binary DER; IN must hold exactly one object
  c     a C array in the style of wolfSSL's certs_test.h, with its sizeof_ constant
        (what wolfSSL's dertoc.pl writes); load it with WOLFSSL_FILETYPE_ASN1
  go    a Go []byte variable

A C header whose "DER" arrays actually hold PEM text is repaired by converting it: the
certificate inside is found and written as real DER.

Output goes to standard output unless -o is given. A file holding a private key is created
with mode 0600.`,
		Example: `  fennec cert convert --to c AmazonRootCA1.pem --name ca_cert_der_2048 -o certs_test.h
  fennec cert convert --to c device.pem.crt --name client_cert_der >> certs_test.h
  fennec cert convert --to der ca.pem -o ca.der
  fennec cert convert --to pem certs_test.h          # back from the header to PEM
  fennec cert convert --to go ca.pem --name caCert`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(streams, args[0]) },
	}
	cmd.Flags().StringVar(&o.to, "to", "", "output form: `pem`, der, c or go (required)")
	cmd.Flags().StringVarP(&o.out, "output", "o", "", "write to `FILE` instead of standard output")
	cmd.Flags().StringVar(&o.name, "name", "", "variable `NAME` for c and go output (default: from the file name, or the array's own name)")
	o.pass.register(cmd)
	cmd.MarkFlagRequired("to")
	return cmd
}

func (o *certConvertOptions) run(streams cmdutil.IO, in string) error {
	switch o.to {
	case "pem", "der", "c", "go":
	default:
		return cmdutil.UsageErrorf("--to %q: use pem, der, c or go", o.to)
	}
	objs, err := parseCertFile(in, o.pass.source(streams))
	if err != nil {
		return err
	}
	// Keep what can be written: parsed objects, and objects whose only fault is their
	// container (PEM or base64 text in a "DER" array), which conversion repairs.
	var usable []pki.Object
	hasKey := false
	for _, obj := range objs {
		var pe *pki.PEMInArrayError
		var be *pki.Base64InArrayError
		repairable := errors.As(obj.Err, &pe) || errors.As(obj.Err, &be)
		if obj.Err != nil && !repairable {
			return certError(fmt.Errorf("cannot convert %s: %w", obj.Name, obj.Err))
		}
		if len(obj.DER) == 0 || (obj.Cert == nil && obj.Key == nil && obj.PublicKey == nil) {
			return certError(fmt.Errorf("cannot convert %s: nothing usable in it", obj.Name))
		}
		if obj.Kind == pki.KindPrivateKey {
			hasKey = true
		}
		usable = append(usable, obj)
	}
	var buf bytes.Buffer
	switch o.to {
	case "pem":
		for _, obj := range usable {
			buf.Write(obj.EncodePEM())
		}
	case "der":
		if len(usable) != 1 {
			names := make([]string, len(usable))
			for i, u := range usable {
				names[i] = u.Name
			}
			return &cmdutil.Failure{Code: cmdutil.ExitError, Err: fmt.Errorf("%s holds %d objects (%s) and DER holds exactly one", in, len(usable), strings.Join(names, ", ")),
				Hint: "convert to pem first and split the blocks into files, or use --to c, which writes one array per object"}
		}
		buf.Write(usable[0].DER)
	case "c", "go":
		for i, obj := range usable {
			name := o.varName(in, obj, i, len(usable))
			if i > 0 {
				buf.WriteByte('\n')
			}
			fmt.Fprintf(&buf, "/* %s */\n", obj.Describe())
			if o.to == "c" {
				buf.Write(pki.EncodeC(name, obj.DER))
			} else {
				buf.Write(pki.EncodeGo(name, obj.DER))
			}
		}
	}
	if o.out == "" {
		_, err := streams.Out.Write(buf.Bytes())
		return err
	}
	mode := os.FileMode(0o644)
	if hasKey {
		mode = 0o600
	}
	if err := pki.WriteFile(o.out, buf.Bytes(), mode); err != nil {
		return certError(err)
	}
	fmt.Fprintf(streams.Err, "wrote %s (%d object%s, %s)\n", o.out, len(usable), plural(len(usable)), o.to)
	return nil
}

func (o *certConvertOptions) varName(in string, obj pki.Object, i, n int) string {
	switch {
	case o.name != "" && n == 1:
		return o.name
	case o.name != "":
		return fmt.Sprintf("%s_%d", o.name, i+1)
	case obj.Container == pki.ContainerCArray || obj.Container == pki.ContainerCString || obj.Container == pki.ContainerGoSlice:
		return strings.ReplaceAll(obj.Name, "#", "_")
	case n == 1:
		return pki.CName(in, obj.Kind)
	}
	return fmt.Sprintf("%s_%d", pki.CName(in, obj.Kind), i+1)
}

type certGenOptions struct {
	out     string
	hosts   []string
	ips     []string
	clients []string
	rsa     bool
	ed25519 bool
	force   bool
}

func newCertGenCmd(streams cmdutil.IO) *cobra.Command {
	o := &certGenOptions{}
	cmd := &cobra.Command{
		Use:   "gen --out DIR [--host NAME]... [--ip IP]... [--client CN]... [--rsa|--ed25519]",
		Short: "Generate a development CA with server and client certificates",
		Long: `gen writes a development PKI into DIR: a CA (ca.pem, ca-key.pem), a server certificate for
the given host names and IP addresses (server.pem, server-key.pem; default localhost, 127.0.0.1
and ::1) and one client certificate per --client common name (<CN>.pem, <CN>-key.pem; default
fennec-client). Keys are ECDSA P-256 unless --rsa (2048 bits) or --ed25519 is given, and are
written with mode 0600.

Never use a development PKI in production.`,
		Example: `  fennec cert gen --out ./pki
  fennec cert gen --out ./pki --host broker.local --ip 192.168.1.10 --client sensor-1 --client sensor-2
  fennec cert gen --out ./pki --rsa          # for devices without ECC support
  fennec cert verify --ca pki/ca.pem --cert pki/server.pem --host localhost`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(streams) },
	}
	cmd.Flags().StringVar(&o.out, "out", "", "write the files into `DIR` (required)")
	cmd.Flags().StringArrayVar(&o.hosts, "host", nil, "server DNS `NAME` (repeatable)")
	cmd.Flags().StringArrayVar(&o.ips, "ip", nil, "server `IP` address (repeatable)")
	cmd.Flags().StringArrayVar(&o.clients, "client", nil, "client certificate common name `CN` (repeatable)")
	cmd.Flags().BoolVar(&o.rsa, "rsa", false, "RSA 2048 keys instead of ECDSA P-256")
	cmd.Flags().BoolVar(&o.ed25519, "ed25519", false, "Ed25519 keys instead of ECDSA P-256")
	cmd.Flags().BoolVar(&o.force, "force", false, "overwrite an existing PKI in DIR")
	cmd.MarkFlagRequired("out")
	return cmd
}

func (o *certGenOptions) run(streams cmdutil.IO) error {
	if o.rsa && o.ed25519 {
		return cmdutil.UsageErrorf("--rsa and --ed25519 exclude each other")
	}
	opts := devpki.Options{Hosts: o.hosts, Clients: o.clients}
	switch {
	case o.rsa:
		opts.KeyType = devpki.KeyRSA2048
	case o.ed25519:
		opts.KeyType = devpki.KeyEd25519
	}
	for _, s := range o.ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return cmdutil.UsageErrorf("--ip %q is not an IP address", s)
		}
		opts.IPs = append(opts.IPs, ip)
	}
	for _, cn := range o.clients {
		if cn == "" || strings.ContainsAny(cn, `/\`) || cn == "ca" || cn == "server" || cn == "ca-key" || cn == "server-key" {
			return cmdutil.UsageErrorf("--client %q cannot be used as a file name", cn)
		}
	}
	if !o.force {
		if _, err := os.Stat(filepath.Join(o.out, "ca.pem")); err == nil {
			return &cmdutil.Failure{Code: cmdutil.ExitError, Err: fmt.Errorf("%s already holds a PKI (ca.pem)", o.out), Hint: "use another directory, or --force to replace it"}
		}
	}
	p, err := devpki.Generate(opts)
	if err != nil {
		return certError(err)
	}
	files, err := p.WriteDir(o.out)
	if err != nil {
		return certError(err)
	}
	w := streams.Out
	fmt.Fprintf(w, "development PKI (%s keys) in %s, valid until %s:\n", opts.KeyType, o.out, p.Server.Cert.NotAfter.Format(time.DateOnly))
	fmt.Fprintf(w, "  CA       %s  (key %s)\n", files.CA, filepath.Join(o.out, "ca-key.pem"))
	fmt.Fprintf(w, "  server   %s  %s  for %s\n", files.ServerCert, files.ServerKey, strings.Join(pki.CertNames(p.Server.Cert), ", "))
	for _, cn := range p.ClientNames {
		fmt.Fprintf(w, "  client   %s  %s  CN=%s\n", files.ClientCert[cn], files.ClientKey[cn], cn)
	}
	cert, key := files.FirstClient(p)
	fmt.Fprintf(w, "\nconnect with:\n  fennec sub -h %s -p 8883 --cafile %s --cert %s --key %s -t '#' -v\n", p.Server.Cert.DNSNames[0], files.CA, cert, key)
	return nil
}

type certVerifyOptions struct {
	ca    string
	cert  string
	key   string
	host  string
	usage string
	pass  passFlags
}

func newCertVerifyCmd(streams cmdutil.IO) *cobra.Command {
	o := &certVerifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify --ca CA --cert CERT [--key KEY] [--host NAME]",
		Short: "Verify that a certificate chains to a CA, is valid now, fits its key and host",
		Long: `verify checks CERT (with any intermediates that follow it in the file) against the CA
certificates in CA: the validity dates (and whether the local clock is plausible), the issuer and
signature, the extended key usage, the host name with --host, and with --key that the private key
belongs to the certificate. Each failure names its cause; the exit status is 0 when all checks
pass and 1 otherwise.`,
		Example: `  fennec cert verify --ca ca.pem --cert client.pem --key client-key.pem
  fennec cert verify --ca ca.pem --cert server.pem --host broker.local
  fennec cert verify --ca AmazonRootCA1.pem --cert device.pem.crt --key private.pem.key --usage client`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(streams) },
	}
	cmd.Flags().StringVar(&o.ca, "ca", "", "CA certificate(s) `FILE` (required)")
	cmd.Flags().StringVar(&o.cert, "cert", "", "certificate `FILE` to verify, leaf first (required)")
	cmd.Flags().StringVar(&o.key, "key", "", "private key `FILE` that must match the certificate")
	cmd.Flags().StringVar(&o.host, "host", "", "server `NAME` or IP the certificate must be valid for")
	cmd.Flags().StringVar(&o.usage, "usage", "", "required extended key usage: `server`, client or any (default: server with --host, else any)")
	o.pass.register(cmd)
	cmd.MarkFlagRequired("ca")
	cmd.MarkFlagRequired("cert")
	return cmd
}

func (o *certVerifyOptions) run(streams cmdutil.IO) error {
	usage := certcheck.UsageAny
	switch o.usage {
	case "":
		if o.host != "" {
			usage = certcheck.UsageServer
		}
	case "server":
		usage = certcheck.UsageServer
	case "client":
		usage = certcheck.UsageClient
	case "any":
	default:
		return cmdutil.UsageErrorf("--usage %q: use server, client or any", o.usage)
	}
	cas, err := pki.LoadCAs(pki.FileSource(o.ca))
	if err != nil {
		return certError(err)
	}
	chain, err := pki.LoadCertificates(pki.FileSource(o.cert))
	if err != nil {
		return certError(err)
	}
	leaf := chain[0]
	if err := certcheck.Verify(leaf, certcheck.VerifyOptions{Roots: cas, Intermediates: chain[1:], Host: o.host, Usage: usage}); err != nil {
		return certError(err)
	}
	w := streams.Out
	fmt.Fprintf(w, "ok   %s is issued by %s\n", pki.NameString(leaf.Subject), pki.NameString(leaf.Issuer))
	fmt.Fprintf(w, "ok   valid until %s (%d days left)\n", leaf.NotAfter.UTC().Format(time.RFC3339), int(time.Until(leaf.NotAfter).Hours()/24))
	if o.host != "" {
		fmt.Fprintf(w, "ok   valid for host %s\n", o.host)
	}
	if o.key != "" {
		key, err := pki.LoadKey(pki.FileSource(o.key), o.pass.source(streams))
		if err != nil {
			return certError(err)
		}
		if err := pki.CheckKeyPair(leaf, key, o.cert, o.key); err != nil {
			return certError(err)
		}
		fmt.Fprintf(w, "ok   key %s matches the certificate\n", o.key)
	}
	return nil
}
