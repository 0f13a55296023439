package cmdutil

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fennec-mqtt/fennec/awsiot"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ConnFlags are the connection flags pub, sub and demo share. Their names and meanings follow
// mosquitto_pub and mosquitto_sub wherever the meaning is the same.
type ConnFlags struct {
	host, URL, ClientID, idPrefix, username, password string
	port, keepalive                                   int
	version                                           string
	persistent                                        bool
	sessionExpiry                                     string
	Debug, Quiet, JSONOut                             bool
	props                                             []string
	willTopic, willPayload                            string
	willQoS                                           int
	willRetain                                        bool
	cafile, capath, cert, key, tlsVersion, keylog     string
	servername                                        string
	aws                                               bool // --aws, or the profile's aws = true
	awsEndpoint                                       string
	alpn                                              []string
	insecure, osCerts                                 bool
	Profile, config                                   string
	ConnectTimeout                                    time.Duration
	profileTopic                                      string // the profile's topic
	Topic                                             string // set by buildSpec: the topic of -L, else the profile's
	NoProfile                                         bool   // the embedded demo: no profile applies
	// DeferTLS makes buildSpec leave the TLS material unloaded (spec.tlsOptions): the doctor
	// loads it as its first step.
	DeferTLS bool
	Header   string // doctor --header: the TLS material comes from a C header
	// pcap is --pcap FILE; capture records the connections into it (set by buildSpec, ended
	// by report).
	pcap    string
	Capture *pcapFile

	fs *pflag.FlagSet
}

func (f *ConnFlags) Register(cmd *cobra.Command) {
	fs := cmd.Flags()
	f.fs = fs
	// -h is the host, as in mosquitto; help stays on --help.
	fs.Bool("help", false, "help for "+cmd.Name())
	fs.StringVarP(&f.host, "host", "h", "localhost", "broker host name or address")
	fs.IntVarP(&f.port, "port", "p", 0, "broker port (default 1883, or 8883 with TLS)")
	fs.StringVarP(&f.URL, "url", "L", "", "broker and topic as a URL: mqtt[s]://[user[:password]@]host[:port]/topic, or ws[s]://host[:port]/path")
	fs.StringVarP(&f.ClientID, "id", "i", "", "client ID (default: generated)")
	fs.StringVar(&f.awsEndpoint, "aws-endpoint", "", "AWS IoT Core device data endpoint (PREFIX-ats.iot.REGION.amazonaws.com[:443]): MQTT over TLS on 8883, the Amazon roots, --aws")
	fs.BoolVar(&f.aws, "aws", false, "the broker is AWS IoT Core or its emulation (fennec broker --aws): AWS defaults and AWS causes in hints (implied by an AWS IoT endpoint)")
	fs.StringVarP(&f.idPrefix, "id-prefix", "I", "", "client ID prefix; the process ID is appended")
	fs.IntVarP(&f.keepalive, "keepalive", "k", 60, "keepalive in seconds (0 disables)")
	fs.StringVarP(&f.username, "username", "u", "", "user name")
	fs.StringVarP(&f.password, "pw", "P", "", "password (prefer the FENNEC_PASSWORD environment variable: flags are visible in the process list)")
	fs.StringVarP(&f.version, "protocol-version", "V", "5", "MQTT version: 5 (mqttv5) or 311 (mqttv311); without -V, a broker that refuses 5 gets 3.1.1")
	fs.BoolVarP(&f.persistent, "disable-clean-session", "c", false, "persistent session: keep subscriptions and queued messages across connections")
	fs.StringVarP(&f.sessionExpiry, "session-expiry-interval", "x", "", "MQTT 5 session expiry in seconds (-1 or ∞: never); default -1 with -c, else 0")
	fs.BoolVarP(&f.Debug, "debug", "d", false, "print every MQTT packet both ways and the TLS facts to stderr")
	fs.BoolVar(&f.Quiet, "quiet", false, "do not print error messages")
	fs.BoolVar(&f.JSONOut, "json", false, "machine-readable output: one JSON object per line")
	fs.StringArrayVarP(&f.props, "property", "D", nil, "MQTT 5 property `COMMAND IDENTIFIER VALUE`, e.g. -D publish content-type text/plain (see 'fennec help properties')")
	fs.StringVar(&f.willTopic, "will-topic", "", "topic of the will message")
	fs.StringVar(&f.willPayload, "will-payload", "", "payload of the will message")
	fs.IntVar(&f.willQoS, "will-qos", 0, "QoS of the will message")
	fs.BoolVar(&f.willRetain, "will-retain", false, "retain the will message")
	fs.StringVar(&f.cafile, "cafile", "", "CA certificates (PEM) that sign the broker's certificate; enables TLS")
	fs.StringVar(&f.capath, "capath", "", "directory of CA certificates (PEM); enables TLS")
	fs.BoolVar(&f.osCerts, "tls-use-os-certs", false, "trust the operating system's CA certificates; enables TLS")
	fs.StringVar(&f.cert, "cert", "", "client certificate (PEM) for mutual TLS")
	fs.StringVar(&f.key, "key", "", "client private key (PEM) for mutual TLS; an encrypted key's passphrase comes from FENNEC_KEY_PASSPHRASE")
	fs.StringVar(&f.tlsVersion, "tls-version", "", "TLS version: tlsv1.3 or tlsv1.2 (default: 1.2 or newer)")
	fs.StringArrayVar(&f.alpn, "tls-alpn", nil, "TLS ALPN protocol, e.g. x-amzn-mqtt-ca for AWS IoT on port 443")
	fs.StringVar(&f.servername, "servername", "", "TLS server name (SNI) and name to verify, when it differs from the host")
	fs.BoolVar(&f.insecure, "insecure", false, "do not verify the broker's certificate (prints a warning; never in production)")
	fs.StringVar(&f.keylog, "keylog", "", "append TLS session keys to this file (NSS key log format) to decrypt a capture in Wireshark")
	fs.StringVar(&f.pcap, "pcap", "", "write the connection as this client saw it to `FILE` (pcapng with the TLS secrets inside: Wireshark shows the MQTT packets decrypted)")
	fs.StringVar(&f.Profile, "profile", "", "use the profile `NAME` from the config file (see 'fennec help profiles')")
	fs.StringVar(&f.config, "config", "", "config file (default $XDG_CONFIG_HOME/fennec/config.toml)")
	fs.DurationVar(&f.ConnectTimeout, "connect-timeout", 30*time.Second, "give up connecting after this long")
	// mosquitto's --nodelay: Go's TCP connections already disable Nagle's algorithm.
	fs.Bool("nodelay", true, "accepted for mosquitto compatibility; Nagle's algorithm is always off")
	fs.MarkHidden("nodelay")
	registerCompletions(cmd, f)
}

// registerCompletions completes the values of the connection flags in the shell: profiles from
// the config file, the versions, certificate files by extension, directories for --capath.
func registerCompletions(cmd *cobra.Command, f *ConnFlags) {
	fixed := func(vals ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return vals, cobra.ShellCompDirectiveNoFileComp
		}
	}
	certFiles := func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"pem", "crt", "cer", "der", "key", "h"}, cobra.ShellCompDirectiveFilterFileExt
	}
	cmd.RegisterFlagCompletionFunc("profile", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return profileNames(f.config), cobra.ShellCompDirectiveNoFileComp
	})
	cmd.RegisterFlagCompletionFunc("protocol-version", fixed("5", "311"))
	cmd.RegisterFlagCompletionFunc("tls-version", fixed("tlsv1.3", "tlsv1.2"))
	for _, name := range []string{"cafile", "cert", "key"} {
		cmd.RegisterFlagCompletionFunc(name, certFiles)
	}
	cmd.RegisterFlagCompletionFunc("capath", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return nil, cobra.ShellCompDirectiveFilterDirs
	})
}

func (f *ConnFlags) Changed(name string) bool { return f.fs != nil && f.fs.Changed(name) }

// parseVersion accepts mosquitto's spellings as well as the plain numbers.
func parseVersion(s string) (int, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "5", "5.0", "mqttv5", "v5":
		return 5, nil
	case "311", "3.1.1", "4", "mqttv311", "v311":
		return 4, nil
	case "31", "3.1", "mqttv31":
		return 0, UsageErrorf("MQTT 3.1 is not supported; use -V 311 or -V 5")
	}
	return 0, UsageErrorf("-V %q: use 5 (mqttv5) or 311 (mqttv311)", s)
}

// target is the resolved broker address and topic of an invocation.
type target struct {
	scheme string // mqtt, mqtts, ws or wss
	path   string // WebSocket path
	host   string
	port   int
	topic  string // from -L
	user   string
	pass   string
	hasPw  bool
}

// parseBrokerURL parses mqtt://, mqtts:// (and the tcp://, ssl://, tls:// aliases) URLs. Its
// errors show the URL without its password.
func parseBrokerURL(raw string) (target, error) {
	shown := RedactURL(raw)
	if !strings.Contains(raw, "://") {
		return target{}, UsageErrorf("%q is not a broker URL; write mqtt://host[:port] or mqtts://host[:port]", shown)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password included
		}
		return target{}, UsageErrorf("broker URL %q: %v", shown, err)
	}
	t := target{host: u.Hostname()}
	switch strings.ToLower(u.Scheme) {
	case "mqtt", "tcp":
		t.scheme = "mqtt"
	case "mqtts", "ssl", "tls", "mqtt+ssl", "mqtt+tls":
		t.scheme = "mqtts"
	case "ws", "wss":
		t.scheme = strings.ToLower(u.Scheme)
	default:
		return target{}, UsageErrorf("broker URL %q: unknown scheme %q; use mqtt:// or mqtts://", shown, u.Scheme)
	}
	if t.host == "" {
		return target{}, UsageErrorf("broker URL %q has no host", shown)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return target{}, UsageErrorf("broker URL %q: bad port %q", shown, p)
		}
		t.port = n
	}
	if u.User != nil {
		t.user = u.User.Username()
		t.pass, t.hasPw = u.User.Password()
	}
	if t.scheme == "ws" || t.scheme == "wss" {
		// the path is the WebSocket endpoint (default /mqtt); the topic comes from -t
		t.path = u.EscapedPath()
		return t, nil
	}
	// the path is the topic; a '#' in a topic filter arrives as the URL's fragment
	t.topic = strings.TrimPrefix(u.Path, "/")
	if u.Fragment != "" || strings.HasSuffix(raw, "#") {
		t.topic += "#" + u.Fragment
	}
	return t, nil
}

// RedactURL replaces the password in a URL's user information with "xxxxx", for messages.
func RedactURL(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return raw
	}
	rest := raw[i+3:]
	auth := rest
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		auth = rest[:j]
	}
	at := strings.LastIndex(auth, "@")
	if at < 0 {
		return raw
	}
	colon := strings.Index(auth[:at], ":")
	if colon < 0 {
		return raw
	}
	return raw[:i+3] + auth[:colon+1] + "xxxxx" + rest[at:]
}

func (t target) defaultPort() int {
	if t.port != 0 {
		return t.port
	}
	switch t.scheme {
	case "mqtts":
		return 8883
	case "ws":
		return 80
	case "wss":
		return 443
	}
	return 1883
}

func (t target) addr() string { return net.JoinHostPort(t.host, strconv.Itoa(t.defaultPort())) }

// tlsFor sets up TLS for a TLS scheme: the warning of --insecure, AWS's ALPN on 443, and the
// configuration, or with deferTLS (the doctor) the options left unloaded (deferred true).
func (f *ConnFlags) tlsFor(streams IO, spec *ConnSpec, t target) (deferred bool, err error) {
	if f.insecure { // every time, --quiet or not
		fmt.Fprintln(streams.Err, "fennec: WARNING: --insecure: the broker's certificate is NOT verified; anyone on the path can read and change this connection. Never use this in production.")
	}
	if t.scheme == "mqtts" && awsiot.IsEndpoint(t.host) && t.defaultPort() == 443 && len(f.alpn) == 0 {
		// AWS IoT Core serves MQTT with client certificates on 443 only with this ALPN
		// protocol (AWS IoT Core Developer Guide, "Device communication protocols": protocols,
		// port mappings and authentication).
		f.alpn = []string{awsiot.ALPN}
	}
	if f.DeferTLS {
		opts, err := tlsOptions(f, t.host)
		if err != nil {
			return false, err
		}
		spec.TLSOptions = &opts
		spec.ClientCert = f.cert != ""
		return true, nil
	}
	facts := &TLSFacts{}
	cfg, err := buildTLSConfig(f, t.host, facts)
	if err != nil {
		return false, err
	}
	spec.TLS = cfg
	spec.TLSFacts = facts
	spec.ClientCert = f.cert != ""
	return false, nil
}

// target is the broker the flags name: -L, -h and -p, --aws-endpoint, and TLS when a TLS flag
// is given with a plain scheme.
func (f *ConnFlags) target() (target, error) {
	if f.awsEndpoint != "" {
		if f.Changed("url") || f.Changed("host") {
			return target{}, UsageErrorf("--aws-endpoint names the broker: drop -L/-h")
		}
		f.URL, f.aws = "mqtts://"+f.awsEndpoint, true
	}
	t := target{scheme: "mqtt", host: f.host}
	if f.URL != "" {
		u, err := parseBrokerURL(f.URL)
		if err != nil {
			return target{}, err
		}
		t = u
		if f.Changed("host") {
			t.host = f.host
		}
	}
	if f.Changed("port") || (f.URL == "" && f.port != 0) {
		t.port = f.port
	}
	if f.port < 0 || f.port > 65535 {
		return target{}, UsageErrorf("-p %d: not a port", f.port)
	}
	wantTLS := f.Header != "" || f.cafile != "" || f.capath != "" || f.osCerts || f.cert != "" || f.tlsVersion != "" || len(f.alpn) > 0 || f.insecure || f.keylog != "" || f.servername != ""
	if wantTLS {
		switch t.scheme {
		case "mqtt":
			t.scheme = "mqtts"
		case "ws":
			t.scheme = "wss"
		}
	}
	return t, nil
}

// credentials sets the user name and password: the flags, else the URL's, else (with a user
// name only) FENNEC_PASSWORD.
func (f *ConnFlags) credentials(spec *ConnSpec, t target, version int) error {
	spec.Username = t.user
	if f.Changed("username") || f.username != "" {
		spec.Username = f.username
	}
	switch {
	case f.Changed("pw") || f.password != "":
		spec.Password, spec.HasPassword = []byte(f.password), true
	case t.hasPw:
		spec.Password, spec.HasPassword = []byte(t.pass), true
	case spec.Username != "":
		// only with a user name: a password nobody asked for is not sent to any broker
		if pw, ok := os.LookupEnv("FENNEC_PASSWORD"); ok {
			spec.Password, spec.HasPassword = []byte(pw), true
		}
	}
	if spec.HasPassword && spec.Username == "" && version == 4 {
		return UsageErrorf("MQTT 3.1.1 allows a password only with a user name: add -u USER")
	}
	return nil
}

// sessionExpiryFor sets the MQTT 5 session expiry: -x, -1 with -c, or -D connect
// session-expiry-interval.
func (f *ConnFlags) sessionExpiryFor(spec *ConnSpec, version int, props propSet) error {
	switch strings.ToLower(f.sessionExpiry) {
	case "":
		if f.persistent && version == 5 {
			v := uint32(0xFFFFFFFF)
			spec.SessionExpiry = &v
		}
	case "-1", "∞", "inf", "never", "4294967295":
		v := uint32(0xFFFFFFFF)
		spec.SessionExpiry = &v
	default:
		n, err := strconv.ParseUint(f.sessionExpiry, 10, 32)
		if err != nil {
			return UsageErrorf("-x %q: seconds from 0 to 4294967294, or -1 for never", f.sessionExpiry)
		}
		v := uint32(n)
		spec.SessionExpiry = &v
	}
	if spec.SessionExpiry != nil && version != 5 {
		if f.Changed("session-expiry-interval") {
			return UsageErrorf("-x (session expiry) is an MQTT 5 feature; use -V 5")
		}
		spec.SessionExpiry = nil
	}
	if se := props.u32("connect", "session-expiry-interval"); se != nil && spec.SessionExpiry == nil {
		spec.SessionExpiry = se
	}
	return nil
}

// will sets the will message of --will-topic and its companions.
func (f *ConnFlags) will(spec *ConnSpec, props propSet) error {
	if f.willTopic != "" {
		if f.willQoS < 0 || f.willQoS > 2 {
			return UsageErrorf("--will-qos %d: QoS is 0, 1 or 2", f.willQoS)
		}
		spec.Will = &Message{Topic: f.willTopic, Payload: []byte(f.willPayload), QoS: byte(f.willQoS), Retain: f.willRetain, Props: props.MessageProps("will")}
		spec.WillDelay = props.u32("will", "will-delay-interval")
	} else if f.willPayload != "" || f.Changed("will-qos") || f.willRetain {
		return UsageErrorf("--will-payload, --will-qos and --will-retain need --will-topic")
	}
	return nil
}

// BuildSpec resolves flags, URL, profile and environment into a connSpec. Precedence: flags given
// on the command line, then -L, then the profile, then defaults. It checks *qos (from -q or the
// profile), turns on the -d trace, and sets f.topic to the topic of -L or of the profile.
func (f *ConnFlags) BuildSpec(streams IO, qos *int) (*ConnSpec, error) {
	prof, err := f.resolveProfile(streams, qos)
	if err != nil {
		return nil, err
	}
	t, err := f.target()
	if err != nil {
		return nil, err
	}
	useTLS := t.scheme == "mqtts" || t.scheme == "wss"
	version, props, err := f.versionAndProps()
	if err != nil {
		return nil, err
	}
	spec, err := f.baseSpec(streams, t, version, props, prof)
	if err != nil {
		return nil, err
	}
	if err := f.credentials(spec, t, version); err != nil {
		return nil, err
	}
	if err := f.sessionExpiryFor(spec, version, props); err != nil {
		return nil, err
	}
	if err := f.will(spec, props); err != nil {
		return nil, err
	}
	if f.cert != "" && f.key == "" || f.key != "" && f.cert == "" {
		return nil, UsageErrorf("--cert and --key go together: give both")
	}
	if f.pcap != "" && f.Capture == nil {
		pc, err := openPcap(f.pcap)
		if err != nil {
			return nil, err
		}
		f.Capture = pc
	}
	spec.capture = f.Capture
	if useTLS {
		deferred, err := f.tlsFor(streams, spec, t)
		if err != nil {
			return nil, err
		}
		if deferred {
			f.Topic = cmp.Or(t.topic, f.profileTopic)
			return spec, nil
		}
	}
	if qos != nil && (*qos < 0 || *qos > 2) {
		return nil, UsageErrorf("-q %d: QoS is 0, 1 or 2", *qos)
	}
	if f.Debug {
		spec.Trace = NewTracer(streams.Err)
	}
	f.Topic = cmp.Or(t.topic, f.profileTopic)
	return spec, nil
}

// resolveProfile loads the profile (none with --no-profile), prints its warning and applies it
// under the flags given.
func (f *ConnFlags) resolveProfile(streams IO, qos *int) (*profile, error) {
	if f.NoProfile {
		return nil, nil
	}
	prof, err := LoadProfile(f.config, f.Profile)
	if err != nil || prof == nil {
		return nil, err
	}
	if prof.warning != "" {
		fmt.Fprintln(streams.Err, prof.warning)
	}
	if err := f.applyProfile(prof, qos); err != nil {
		return nil, err
	}
	return prof, nil
}

// versionAndProps is the MQTT version of -V (5 when -D gives properties and -V was not given)
// and the properties of -D.
func (f *ConnFlags) versionAndProps() (int, propSet, error) {
	version, err := parseVersion(f.version)
	if err != nil {
		return 0, nil, err
	}
	if len(f.props) > 0 && version != 5 {
		if f.Changed("protocol-version") {
			return 0, nil, UsageErrorf("-D sets MQTT 5 properties; it cannot be used with -V %s", f.version)
		}
		version = 5
	}
	props, err := parseProps(f.props)
	if err != nil {
		return 0, nil, err
	}
	return version, props, nil
}

// baseSpec is the connection of the target t: address, version, keep alive (with AWS IoT
// Core's range noted), session, client ID.
func (f *ConnFlags) baseSpec(streams IO, t target, version int, props propSet, prof *profile) (*ConnSpec, error) {
	if f.keepalive < 0 || f.keepalive > 65535 {
		return nil, UsageErrorf("-k %d: keepalive is 0 to 65535 seconds", f.keepalive)
	}
	spec := &ConnSpec{
		Host:       t.host,
		Port:       t.defaultPort(),
		Version:    version,
		KeepAlive:  time.Duration(f.keepalive) * time.Second,
		CleanStart: !f.persistent,
		Props:      props,
		Timeout:    f.ConnectTimeout,
	}
	spec.AWS = f.aws || awsiot.IsEndpoint(t.host)
	spec.VersionFallback = version == 5 && len(f.props) == 0 && !f.Changed("protocol-version") && (prof == nil || prof.Version == "")
	if !f.Quiet {
		spec.notes = streams.Err
	}
	if spec.AWS && (f.keepalive != 0 && f.keepalive < int(awsiot.MinKeepAlive/time.Second) || f.keepalive > int(awsiot.MaxKeepAlive/time.Second) || f.keepalive == 0) && !f.Quiet {
		fmt.Fprintf(streams.Err, "fennec: note: AWS IoT Core takes a keep-alive of %d to %d s and uses the nearest (keep-alive %d s asked)\n",
			int(awsiot.MinKeepAlive/time.Second), int(awsiot.MaxKeepAlive/time.Second), f.keepalive)
	}
	if f.keepalive == 0 {
		spec.KeepAlive = -1
	}
	spec.Server = t.scheme + "://" + t.addr() + t.path
	spec.ClientID = f.ClientID
	if spec.ClientID == "" && f.idPrefix != "" {
		spec.ClientID = fmt.Sprintf("%s%d", f.idPrefix, os.Getpid())
	}
	if f.persistent && spec.ClientID == "" {
		return nil, UsageErrorf("-c (persistent session) needs a client ID: add -i ID")
	}
	return spec, nil
}

// Report prints a failure as JSON too when --json is on, and silences it with --quiet. The
// returned error still decides the exit code.
func (f *ConnFlags) Report(streams IO, err error) error {
	if f.Capture != nil {
		f.Capture.Finish(streams, f.Quiet)
		f.Capture = nil
	}
	if err == nil {
		return nil
	}
	if f.JSONOut {
		PrintJSONError(streams.Out, err)
	}
	if f.Quiet {
		return QuietError{err}
	}
	return err
}
