package brokercmd

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
	"github.com/fennec-mqtt/fennec/pki"
	"github.com/fennec-mqtt/fennec/pki/devpki"
	"github.com/spf13/cobra"
)

type brokerOptions struct {
	listen     []string
	pkiDir     string
	cert, key  string
	cafile     string
	optCert    bool
	tlsVersion string
	aclFile    string
	aws        bool
	awsDevices string
	awsPolicy  string
	awsRegion  string
	awsAccount string
	awsJobs    []string
	awsTmpls   []string
	verbose    int
	quiet      bool
	logJSON    bool
	maxStored  int
	maxPacket  uint32
}

const brokerLong = `Run Fennec's development broker (mochi-mqtt inside) until Ctrl-C.

Without flags it listens on plain MQTT at 127.0.0.1:1883 and on TLS 1.3 with mutual TLS at
127.0.0.1:8883, using a development PKI (CA, server and client certificates) that it creates
in --pki-dir the first time and reuses afterwards. It prints command lines for fennec and
mosquitto that connect to it.

Listeners are URLs: tcp://, tls://, ws://, wss:// (port 0: a free port). TLS listeners need a
server certificate (--cert/--key, or the development PKI's) and require a client certificate
signed by --cafile (or the development CA) unless --optional-client-cert is given. The client
certificate's common name becomes the client's identity for the ACL file (--acl; see
docs/broker.md). TLS 1.3 is the minimum unless --tls-version 1.2.

--aws emulates AWS IoT Core: the certificates in --aws-devices are the registered devices (the
file name is the thing name), --aws-policy is an AWS IoT policy document, and the broker
behaves like AWS where it differs from the MQTT specifications (docs/aws-emulation.md).

Logs are structured (slog) on stderr: -v for debug, --quiet for warnings only, --log-json.`

func New(streams cmdutil.IO) *cobra.Command {
	o := &brokerOptions{}
	cmd := &cobra.Command{
		Use:   "broker [flags]",
		Short: "Run the development broker: plain MQTT, TLS 1.3 with mutual TLS, AWS IoT emulation",
		Long:  brokerLong,
		Example: `  fennec broker                                        # 1883 plain, 8883 TLS 1.3 + client certs
  fennec broker --listen tls://0.0.0.0:8883 --listen ws://127.0.0.1:8080 -v
  fennec broker --acl acl.json                         # users, passwords, topic rules
  fennec broker --aws --aws-devices ./certs --aws-policy policy.json
  fennec broker passwd alice >> users.json             # hash a password for the ACL file`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBroker(cmd, streams, o) },
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&o.listen, "listen", nil, "listener URL (repeatable); default tcp://127.0.0.1:1883 and tls://127.0.0.1:8883")
	fs.StringVar(&o.pkiDir, "pki-dir", "", "development PKI directory, created when missing (default: <user config dir>/fennec/dev-pki)")
	fs.StringVar(&o.cert, "cert", "", "server certificate (PEM) for TLS listeners, instead of the development PKI's")
	fs.StringVar(&o.key, "key", "", "server private key (PEM) for --cert")
	fs.StringVar(&o.cafile, "cafile", "", "CA (PEM) that signs client certificates, instead of the development CA")
	fs.BoolVar(&o.optCert, "optional-client-cert", false, "accept TLS clients without a certificate (they then need a username or anonymous access)")
	fs.StringVar(&o.tlsVersion, "tls-version", "1.3", "minimum TLS version: 1.3 or 1.2")
	fs.StringVar(&o.aclFile, "acl", "", "ACL file (JSON): users, password hashes, publish/subscribe filters per identity")
	fs.BoolVar(&o.aws, "aws", false, "emulate AWS IoT Core (needs --aws-devices and --aws-policy)")
	fs.StringVar(&o.awsDevices, "aws-devices", "", "directory of registered device certificates; the file name is the thing name")
	fs.StringVar(&o.awsPolicy, "aws-policy", "", "AWS IoT policy document (JSON) attached to every device")
	fs.StringVar(&o.awsRegion, "aws-region", "us-east-1", "region in the ARNs the policy is matched against")
	fs.StringArrayVar(&o.awsJobs, "aws-job", nil, "a job for the emulation's Jobs service: ID=DOCUMENT.json:THING[,THING...] (repeatable)")
	fs.StringArrayVar(&o.awsTmpls, "aws-template", nil, "a Fleet Provisioning template: NAME=THING_NAME_PATTERN, e.g. fleet=sensor-{SerialNumber} (repeatable; certificates issued by the development CA)")
	fs.StringVar(&o.awsAccount, "aws-account", "123456789012", "account ID in the ARNs the policy is matched against")
	fs.CountVarP(&o.verbose, "verbose", "v", "more logs (-v: debug)")
	fs.BoolVar(&o.quiet, "quiet", false, "log warnings and errors only")
	fs.BoolVar(&o.logJSON, "log-json", false, "logs as JSON lines")
	fs.IntVar(&o.maxStored, "max-stored", broker.DefaultMaxStoredMessages, "QoS 1/2 messages a session holds; past it a message is dropped for that session, logged and counted")
	fs.Uint32Var(&o.maxPacket, "max-packet-size", broker.DefaultMaxPacketSize, "largest packet a client may send (announced to MQTT 5 clients)")
	cmd.AddCommand(newBrokerPasswdCmd(streams))
	return cmd
}

func defaultPKIDir() string {
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "fennec", "dev-pki")
	}
	return filepath.Join(os.TempDir(), "fennec-dev-pki")
}

// loadOrCreateDevPKI reuses the development PKI in dir, or creates one there.
func loadOrCreateDevPKI(dir string) (*devpki.PKI, devpki.Files, bool, error) {
	p, files, err := devpki.LoadDir(dir, nil)
	if err == nil {
		return p, files, false, nil
	}
	if !errors.Is(err, devpki.ErrNotFound) {
		return nil, devpki.Files{}, false, fmt.Errorf("development PKI in %s is unreadable: %w (remove the directory to start afresh)", dir, err)
	}
	p, err = devpki.Generate(devpki.Options{})
	if err != nil {
		return nil, devpki.Files{}, false, err
	}
	files, err = p.WriteDir(dir)
	return p, files, true, err
}

func runBroker(cmd *cobra.Command, streams cmdutil.IO, o *brokerOptions) error {
	minVersion, err := o.check()
	if err != nil {
		return err
	}
	log := brokerLogger(streams.Err, o)
	dev, devFiles, created, tlsOpts, err := o.tlsOptions(minVersion)
	if err != nil {
		return err
	}
	opts := broker.Options{Logger: log, MaxStoredMessages: o.maxStored, MaxPacketSize: o.maxPacket}
	for _, l := range o.listen {
		opts.Listeners = append(opts.Listeners, broker.Listener{URL: l, TLS: tlsOpts})
	}
	if o.aclFile != "" {
		acl, err := broker.LoadACL(o.aclFile)
		if err != nil {
			return &cmdutil.Failure{Code: cmdutil.ExitError, Err: err, Hint: "see docs/broker.md for the ACL file format"}
		}
		opts.ACL = acl
	}
	if o.aws {
		if opts.AWS, err = o.awsOptions(dev); err != nil {
			return err
		}
	}
	b, err := broker.New(opts)
	if err != nil {
		return cmdutil.UsageError{Err: err}
	}
	ctx := cmd.Context()
	if err := b.Start(ctx); err != nil {
		hint := ""
		var oe *net.OpError
		if errors.As(err, &oe) {
			hint = "another program (a mosquitto service?) may already use the port; choose another with --listen, e.g. --listen tcp://127.0.0.1:0"
		}
		return &cmdutil.Failure{Code: cmdutil.ExitNetwork, Err: err, Hint: hint}
	}
	defer b.Close()
	var things []string
	if opts.AWS != nil {
		for _, d := range opts.AWS.Devices {
			things = append(things, d.ThingName)
		}
	}
	printBrokerBanner(streams.Out, b, o, dev, devFiles, created, tlsOpts, things)
	<-ctx.Done()
	log.Info("shutting down")
	return b.Close()
}

// usage is a usage error (exit 2) with a formatted message.
func usage(format string, a ...any) error { return cmdutil.UsageError{Err: fmt.Errorf(format, a...)} }

// check applies the default listeners and checks the flags that go together; it returns the
// minimum TLS version asked for.
func (o *brokerOptions) check() (uint16, error) {
	if len(o.listen) == 0 {
		o.listen = []string{"tcp://127.0.0.1:1883", "tls://127.0.0.1:8883"}
	}
	minVersion, err := pki.ParseVersion(o.tlsVersion)
	if err != nil {
		return 0, usage("--tls-version: %s", cmdutil.TrimPKI(err.Error()))
	}
	if (o.cert == "") != (o.key == "") {
		return 0, usage("--cert and --key go together")
	}
	if o.aws && (o.awsDevices == "" || o.awsPolicy == "") {
		return 0, usage("--aws needs --aws-devices DIR and --aws-policy FILE")
	}
	if !o.aws && (o.awsDevices != "" || o.awsPolicy != "" || len(o.awsJobs) > 0 || len(o.awsTmpls) > 0) {
		return 0, usage("--aws-devices, --aws-policy, --aws-job and --aws-template need --aws")
	}
	return minVersion, nil
}

// brokerLogger is the broker's log on w: text or JSON, at the level -q or -v ask for.
func brokerLogger(w io.Writer, o *brokerOptions) *slog.Logger {
	level := slog.LevelInfo
	switch {
	case o.quiet:
		level = slog.LevelWarn
	case o.verbose > 0:
		level = slog.LevelDebug
	}
	var handler slog.Handler = slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	if o.logJSON {
		handler = slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	}
	return slog.New(handler)
}

// tlsOptions is the TLS of the listeners: --cert/--key/--cafile, and the development PKI
// (created on first use) for whatever they leave open.
func (o *brokerOptions) tlsOptions(minVersion uint16) (dev *devpki.PKI, devFiles devpki.Files, created bool, t *broker.TLS, err error) {
	needTLS := false
	for _, l := range o.listen {
		if strings.HasPrefix(l, "tls://") || strings.HasPrefix(l, "wss://") || strings.HasPrefix(l, "mqtts://") {
			needTLS = true
		}
	}
	if needTLS && (o.cert == "" || (o.cafile == "" && !o.aws)) {
		dir := o.pkiDir
		if dir == "" {
			dir = defaultPKIDir()
		}
		dev, devFiles, created, err = loadOrCreateDevPKI(dir)
		if err != nil {
			return nil, devpki.Files{}, false, nil, &cmdutil.Failure{Code: cmdutil.ExitError, Err: err}
		}
	}
	t = &broker.TLS{MinVersion: minVersion, RequireClientCert: !o.optCert && !o.aws}
	if o.cert != "" {
		t.CertFile, t.KeyFile = o.cert, o.key
	} else if dev != nil {
		t.CertFile, t.KeyFile = devFiles.ServerCert, devFiles.ServerKey
	}
	if o.cafile != "" {
		t.ClientCAFile = o.cafile
	} else if dev != nil {
		t.ClientCAFile = devFiles.CA
	}
	return dev, devFiles, created, t, nil
}

// awsOptions is the AWS IoT Core emulation of --aws: devices, policy, jobs and provisioning
// templates (whose certificates the development CA dev issues).
func (o *brokerOptions) awsOptions(dev *devpki.PKI) (*broker.AWS, error) {
	devices, err := broker.LoadDevices(o.awsDevices)
	if err != nil {
		return nil, &cmdutil.Failure{Code: cmdutil.ExitError, Err: err}
	}
	policy, err := broker.LoadPolicy(o.awsPolicy)
	if err != nil {
		return nil, &cmdutil.Failure{Code: cmdutil.ExitError, Err: err, Hint: "see docs/aws-emulation.md for what the emulation evaluates"}
	}
	aws := &broker.AWS{Devices: devices, Policy: policy, Region: o.awsRegion, Account: o.awsAccount}
	for _, spec := range o.awsJobs {
		job, err := parseJobFlag(spec)
		if err != nil {
			return nil, usage("%v", err)
		}
		aws.Jobs = append(aws.Jobs, job)
	}
	for _, spec := range o.awsTmpls {
		t, err := parseTemplateFlag(spec)
		if err != nil {
			return nil, usage("%v", err)
		}
		aws.Templates = append(aws.Templates, t)
	}
	if len(aws.Templates) > 0 {
		if dev == nil {
			return nil, usage("--aws-template issues certificates with the development CA: drop --cert/--key (the development PKI is used)")
		}
		aws.Issuer = dev.CA
	}
	return aws, nil
}

// printBrokerBanner tells the user what is listening and how to connect to it.
func printBrokerBanner(w io.Writer, b *broker.Broker, o *brokerOptions, dev *devpki.PKI, files devpki.Files, created bool, t *broker.TLS, things []string) {
	fmt.Fprintln(w, "fennec broker is running; Ctrl-C stops it.")
	for _, l := range b.Listeners() {
		fmt.Fprintf(w, "  %-4s %-28s %s\n", l.Scheme, l.ClientURL(), listenerDescription(l.Scheme, o, t))
	}
	if dev != nil {
		verb := "reused"
		if created {
			verb = "created"
		}
		fmt.Fprintf(w, "Development PKI (%s): %s\n", verb, files.Dir)
	}
	if o.aws {
		fmt.Fprintf(w, "Registered things: %s\n", strings.Join(things, ", "))
		printAWSExamples(w, b, o, dev, files)
		return
	}
	printTryIt(w, b, o, dev, files, t)
}

// listenerDescription says what a listener of this scheme asks of a client.
func listenerDescription(scheme string, o *brokerOptions, t *broker.TLS) string {
	switch scheme {
	case "tls", "wss":
		desc := "TLS " + map[uint16]string{tls.VersionTLS13: "1.3", tls.VersionTLS12: "1.2 or 1.3"}[t.MinVersion]
		switch {
		case o.aws:
			desc += ", registered device certificate required (AWS IoT emulation)"
		case t.RequireClientCert:
			desc += ", client certificate required"
		}
		return desc
	case "tcp", "ws":
		if o.aws {
			return "no TLS (AWS IoT emulation refuses clients without certificate)"
		}
		return "no TLS"
	}
	return ""
}

// printAWSExamples shows, for each TLS listener of the AWS IoT emulation, how a device
// connects with mosquitto_pub and fennec.
func printAWSExamples(w io.Writer, b *broker.Broker, o *brokerOptions, dev *devpki.PKI, files devpki.Files) {
	fmt.Fprintln(w, "\nConnect as a device with its certificate and key; the client ID is what the policy's client/ resource sees:")
	for _, l := range b.Listeners() {
		if l.Scheme != "tls" {
			continue
		}
		host, port, _ := net.SplitHostPort(l.Addr)
		ca := "AmazonRootCA1.pem"
		if dev != nil {
			ca = files.CA
		}
		fmt.Fprintf(w, "  mosquitto_pub -h %s -p %s --cafile %s --cert DEVICE.pem --key DEVICE-key.pem -i THING -t TOPIC -m hello -q 1\n",
			host, port, cmdutil.ShellQuote(ca))
		fmt.Fprintf(w, "  fennec pub --aws -h %s -p %s --cafile %s --cert DEVICE.pem --key DEVICE-key.pem -i THING -t TOPIC -m hello -q 1\n",
			host, port, cmdutil.ShellQuote(ca))
		fmt.Fprintf(w, "  fennec shadow get --aws -h %s -p %s --cafile %s --cert DEVICE.pem --key DEVICE-key.pem --thing THING\n",
			host, port, cmdutil.ShellQuote(ca))
		if len(o.awsJobs) > 0 {
			fmt.Fprintf(w, "  fennec jobs list --aws -h %s -p %s --cafile %s --cert DEVICE.pem --key DEVICE-key.pem --thing THING\n",
				host, port, cmdutil.ShellQuote(ca))
		}
	}
}

// printTryIt shows, for each TCP and TLS listener, a subscriber and a publisher with fennec
// and with mosquitto's clients.
func printTryIt(w io.Writer, b *broker.Broker, o *brokerOptions, dev *devpki.PKI, files devpki.Files, t *broker.TLS) {
	cert, key := "", ""
	if dev != nil {
		cert, key = files.FirstClient(dev)
	}
	fmt.Fprintln(w, "\nTry it (in two terminals):")
	for _, l := range b.Listeners() {
		host, port, _ := net.SplitHostPort(l.Addr)
		if host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		var common []string
		switch l.Scheme {
		case "tcp":
			common = []string{"-h", host, "-p", port}
		case "tls":
			ca := t.ClientCAFile
			if dev != nil {
				ca = files.CA
			}
			common = []string{"-h", host, "-p", port, "--cafile", ca}
			if cert != "" && (t.RequireClientCert || o.cafile == "") {
				common = append(common, "--cert", cert, "--key", key)
			}
		default:
			continue // mosquitto's Debian clients have no WebSocket transport
		}
		args := strings.Join(quoteAll(common), " ")
		fmt.Fprintf(w, "  # %s\n", l.ClientURL())
		fmt.Fprintf(w, "  fennec sub %s -t 'test/#' -v\n", args)
		fmt.Fprintf(w, "  fennec pub %s -t test/hello -m 'hello from fennec'\n", args)
		fmt.Fprintf(w, "  mosquitto_sub %s -t 'test/#' -v\n", args)
		fmt.Fprintf(w, "  mosquitto_pub %s -t test/hello -m 'hello from mosquitto'\n", args)
	}
}

func quoteAll(a []string) []string {
	out := make([]string, len(a))
	for i, s := range a {
		out[i] = cmdutil.ShellQuote(s)
	}
	return out
}

func newBrokerPasswdCmd(streams cmdutil.IO) *cobra.Command {
	var iterations int
	cmd := &cobra.Command{
		Use:   "passwd USER",
		Short: "Hash a password for the broker's ACL file (PBKDF2-SHA256)",
		Long: `Read a password from the first line of stdin (or the environment variable FENNEC_PASSWORD)
and print a user entry for the "users" list of the broker's ACL file, with the password
hashed by salted PBKDF2-HMAC-SHA256. Add "publish" and "subscribe" filters to the entry.`,
		Example: `  echo 's3cret' | fennec broker passwd alice`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, ok := os.LookupEnv("FENNEC_PASSWORD")
			if !ok {
				line, err := bufio.NewReader(streams.In).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return &cmdutil.Failure{Code: cmdutil.ExitError, Err: err}
				}
				pw = strings.TrimRight(line, "\r\n")
			}
			if pw == "" {
				return cmdutil.UsageError{Err: errors.New("empty password (give it on stdin or in FENNEC_PASSWORD)")}
			}
			h, err := broker.HashPassword(pw, iterations)
			if err != nil {
				return &cmdutil.Failure{Code: cmdutil.ExitError, Err: err}
			}
			out, _ := json.Marshal(struct {
				Name      string   `json:"name"`
				Password  string   `json:"password"`
				Publish   []string `json:"publish"`
				Subscribe []string `json:"subscribe"`
			}{args[0], h, []string{}, []string{}})
			fmt.Fprintln(streams.Out, string(out))
			return nil
		},
	}
	cmd.Flags().IntVar(&iterations, "iterations", broker.PasswordIterations, "PBKDF2 iterations")
	return cmd
}

// parseJobFlag reads --aws-job ID=DOCUMENT.json:THING[,THING...].
func parseJobFlag(spec string) (broker.Job, error) {
	bad := fmt.Errorf("--aws-job %q: want ID=DOCUMENT.json:THING[,THING...], e.g. fw-1=job.json:dev1", spec)
	id, rest, ok := strings.Cut(spec, "=")
	if !ok || id == "" {
		return broker.Job{}, bad
	}
	i := strings.LastIndex(rest, ":")
	if i <= 0 || i == len(rest)-1 {
		return broker.Job{}, bad
	}
	doc, err := os.ReadFile(rest[:i])
	if err != nil {
		return broker.Job{}, fmt.Errorf("--aws-job %s: %w", id, err)
	}
	return broker.Job{ID: id, Document: doc, Things: strings.Split(rest[i+1:], ",")}, nil
}

// parseTemplateFlag reads --aws-template NAME=PATTERN; the pattern's {Param} placeholders are
// the template's required parameters.
func parseTemplateFlag(spec string) (broker.ProvisioningTemplate, error) {
	name, pattern, ok := strings.Cut(spec, "=")
	if !ok || name == "" || pattern == "" {
		return broker.ProvisioningTemplate{}, fmt.Errorf("--aws-template %q: want NAME=THING_NAME_PATTERN, e.g. fleet=sensor-{SerialNumber}", spec)
	}
	t := broker.ProvisioningTemplate{Name: name, ThingName: pattern}
	for _, m := range regexp.MustCompile(`\{([A-Za-z0-9_]+)\}`).FindAllStringSubmatch(pattern, -1) {
		t.Parameters = append(t.Parameters, m[1])
	}
	return t, nil
}
