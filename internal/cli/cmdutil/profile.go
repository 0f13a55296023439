package cmdutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// profile is one named connection profile in the config file. Every field is optional; flags
// given on the command line win over the profile.
type profile struct {
	Broker      string   `toml:"broker"`       // mqtt://host:1883 or mqtts://host:8883
	ClientID    string   `toml:"client_id"`    // -i
	Username    string   `toml:"username"`     // -u
	Password    string   `toml:"password"`     // discouraged: prefer password_env or FENNEC_PASSWORD
	PasswordEnv string   `toml:"password_env"` // name of an environment variable holding the password
	CAFile      string   `toml:"cafile"`
	CAPath      string   `toml:"capath"`
	Cert        string   `toml:"cert"`
	Key         string   `toml:"key"`
	TLSVersion  string   `toml:"tls_version"` // tlsv1.2 or tlsv1.3
	ALPN        []string `toml:"alpn"`
	ServerName  string   `toml:"servername"`
	Insecure    bool     `toml:"insecure"`
	AWS         bool     `toml:"aws"`
	Version     string   `toml:"version"`   // "5" or "311"
	KeepAlive   *int     `toml:"keepalive"` // seconds
	QoS         *int     `toml:"qos"`
	Topic       string   `toml:"topic"` // default topic for pub/sub

	// warning is said on stderr when the profile is used: the file holds a password and
	// other users may read it.
	warning string
}

// configPath returns the config file: --config, else $XDG_CONFIG_HOME/fennec/config.toml, else
// ~/.config/fennec/config.toml.
func configPath(explicit string) string {
	if explicit != "" {
		return explicit
	}
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "fennec", "config.toml")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".config", "fennec", "config.toml")
	}
	return ""
}

// LoadProfile returns the profile to use, or nil when none is selected. A profile named with
// --profile (or FENNEC_PROFILE) that does not exist is an error.
func LoadProfile(explicitPath, name string) (*profile, error) {
	if name == "" {
		name = os.Getenv("FENNEC_PROFILE")
	}
	path := configPath(explicitPath)
	if path == "" {
		if name != "" {
			return nil, UsageErrorf("--profile %s: cannot locate the config file (no home directory); use --config FILE", name)
		}
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && name == "" && explicitPath == "" {
			return nil, nil
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil, UsageErrorf("config file %s does not exist; `fennec help profiles` shows its format", path)
		}
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	// Each profile is decoded on its own, when it is used: a mistake in one profile does not
	// break the others.
	var cf struct {
		DefaultProfile string                    `toml:"default_profile"`
		Profiles       map[string]map[string]any `toml:"profiles"`
	}
	dec := toml.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cf); err != nil {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			// names and lines only: go-toml's own message quotes the lines around, which may
			// hold a password
			var unknown []string
			for _, e := range sm.Errors {
				row, _ := e.Position()
				unknown = append(unknown, fmt.Sprintf("%q (line %d)", strings.Join(e.Key(), "."), row))
			}
			return nil, UsageErrorf("config file %s: unknown setting %s; `fennec help profiles` lists the settings", path, strings.Join(unknown, ", "))
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, UsageErrorf("config file %s:%d:%d: %s", path, row, col, de.Error())
		}
		return nil, UsageErrorf("config file %s: %v", path, err)
	}
	if name == "" {
		name = cf.DefaultProfile
	}
	if name == "" {
		return nil, nil
	}
	rawProfile, ok := cf.Profiles[name]
	if !ok {
		names := make([]string, 0, len(cf.Profiles))
		for n := range cf.Profiles {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, UsageErrorf("profile %q is not in %s (profiles there: %s)", name, path, strings.Join(names, ", "))
	}
	p, err := decodeProfile(data, path, name, rawProfile)
	if err != nil {
		return nil, err
	}
	if p.Password != "" {
		if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
			p.warning = fmt.Sprintf("fennec: WARNING: %s holds a password and other users can read it (mode %04o): chmod 600 %s, or use password_env", path, st.Mode().Perm(), path)
		}
	}
	dir := filepath.Dir(path)
	for _, s := range []*string{&p.CAFile, &p.CAPath, &p.Cert, &p.Key} {
		*s = expandPath(*s, dir)
	}
	return &p, nil
}

// expandPath expands ~ and makes relative paths relative to the config file's directory.
func expandPath(p, base string) string {
	if p == "" {
		return p
	}
	if p == "~" || strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, p[1:])
		}
	}
	if !filepath.IsAbs(p) {
		return filepath.Join(base, p)
	}
	return p
}

// applyProfile copies the profile's settings into flags the user did not give.
func (f *ConnFlags) applyProfile(p *profile, qos *int) error {
	set := func(name string, dst *string, v string) {
		if v != "" && !f.Changed(name) {
			*dst = v
		}
	}
	if p.Broker != "" && !f.Changed("url") && !f.Changed("host") && !f.Changed("port") {
		f.URL = p.Broker
	}
	f.profileTopic = p.Topic
	set("id", &f.ClientID, p.ClientID)
	set("username", &f.username, p.Username)
	if !f.Changed("pw") && os.Getenv("FENNEC_PASSWORD") == "" {
		switch {
		case p.PasswordEnv != "":
			v, ok := os.LookupEnv(p.PasswordEnv)
			if !ok {
				return UsageErrorf("the profile takes its password from $%s, which is not set", p.PasswordEnv)
			}
			f.password = v
		case p.Password != "":
			f.password = p.Password
		}
	}
	set("cafile", &f.cafile, p.CAFile)
	set("capath", &f.capath, p.CAPath)
	set("cert", &f.cert, p.Cert)
	set("key", &f.key, p.Key)
	set("tls-version", &f.tlsVersion, p.TLSVersion)
	set("servername", &f.servername, p.ServerName)
	set("protocol-version", &f.version, p.Version)
	if len(p.ALPN) > 0 && !f.Changed("tls-alpn") {
		f.alpn = p.ALPN
	}
	if p.AWS && !f.Changed("aws") {
		f.aws = true
	}
	if p.Insecure && !f.Changed("insecure") {
		f.insecure = true
	}
	if p.KeepAlive != nil && !f.Changed("keepalive") {
		f.keepalive = *p.KeepAlive
	}
	if p.QoS != nil && qos != nil && !f.Changed("qos") {
		if *p.QoS < 0 || *p.QoS > 2 {
			return UsageErrorf("profile: qos = %s; QoS is 0, 1 or 2", strconv.Itoa(*p.QoS))
		}
		*qos = *p.QoS
	}
	return nil
}

const ProfilesHelp = `Profiles keep the settings for a broker in one place, so that

    fennec pub --profile aws -t 'things/dev1/hello' -m hi

does what a long mosquitto_pub line does. The config file is TOML, at
$XDG_CONFIG_HOME/fennec/config.toml (usually ~/.config/fennec/config.toml), or the file given
with --config. Select a profile with --profile NAME, or with the environment variable
FENNEC_PROFILE, or name a default_profile in the file. Flags on the command line win over the
profile; relative certificate paths are relative to the config file.

    default_profile = "local"

    [profiles.local]
    broker = "mqtts://localhost:8883"
    cafile = "dev-pki/ca.pem"
    cert   = "dev-pki/fennec-client.pem"
    key    = "dev-pki/fennec-client-key.pem"

    [profiles.aws]
    broker      = "mqtts://a1b2c3d4e5f6g7-ats.iot.us-east-2.amazonaws.com:8883"
    client_id   = "dev1"                 # AWS IoT: usually the thing name
    cafile      = "~/aws/AmazonRootCA1.pem"
    cert        = "~/aws/dev1-certificate.pem.crt"
    key         = "~/aws/dev1-private.pem.key"
    tls_version = "tlsv1.2"
    version     = "311"
    qos         = 1                      # AWS IoT has no QoS 2

    [profiles.lab]
    broker       = "mqtt://10.0.0.5:1883"
    username     = "lab"
    password_env = "LAB_MQTT_PASSWORD"   # the password stays out of the file and the process list
    topic        = "lab/#"

Settings: broker, client_id, username, password, password_env, cafile, capath, cert, key,
tls_version, alpn (a list), servername, insecure, aws (true: AWS IoT Core or its emulation), version ("5" or "311"), keepalive (seconds),
qos, topic. Unknown settings are an error, so a typo does not pass silently.

Secrets: FENNEC_PASSWORD, when set, is the password whenever a user name is given (unless -P is);
password_env names another variable for one profile. A password given with -P is visible to
every user of the machine in the process list.
`

// decodeProfile decodes one profile's settings strictly, naming the file, the line and the
// profile of a setting that is unknown or of the wrong type.
func decodeProfile(file []byte, path, name string, raw map[string]any) (profile, error) {
	var p profile
	b, err := toml.Marshal(raw)
	if err != nil {
		return p, UsageErrorf("config file %s, profile %q: %v", path, name, err)
	}
	dec := toml.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	err = dec.Decode(&p)
	if err == nil {
		return p, nil
	}
	var sm *toml.StrictMissingError
	if errors.As(err, &sm) {
		var unknown []string
		for _, e := range sm.Errors {
			key := strings.Join(e.Key(), ".")
			unknown = append(unknown, fmt.Sprintf("%q (line %d)", key, settingLine(file, name, key)))
		}
		return p, UsageErrorf("config file %s, profile %q: unknown setting %s; `fennec help profiles` lists the settings", path, name, strings.Join(unknown, ", "))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		key := strings.Join(de.Key(), ".")
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if _, typ, ok := strings.Cut(msg, " of type "); ok {
			want := map[string]string{"int": "a whole number", "*int": "a whole number", "bool": "true or false", "string": "a string in quotes", "[]string": "a list of strings"}[strings.TrimSpace(typ)]
			if want != "" {
				msg = "wants " + want
			}
		}
		return p, UsageErrorf("config file %s:%d, profile %q, setting %q: %s", path, settingLine(file, name, key), name, key, msg)
	}
	return p, UsageErrorf("config file %s, profile %q: %v", path, name, err)
}

// settingLine finds the line of key in the table [profiles.NAME] of file (0: not found).
func settingLine(file []byte, name, key string) int {
	in := false
	for i, line := range strings.Split(string(file), "\n") {
		l := strings.TrimSpace(line)
		if strings.HasPrefix(l, "[") {
			h := strings.Trim(strings.TrimSpace(strings.Trim(l, "[]")), " ")
			in = h == "profiles."+name || h == `profiles."`+name+`"`
			continue
		}
		if in {
			k, _, ok := strings.Cut(l, "=")
			if ok && strings.Trim(strings.TrimSpace(k), `"`) == key {
				return i + 1
			}
		}
	}
	return 0
}

// profileNames lists the profiles of the config file, for shell completion (none when it cannot
// be read).
func profileNames(explicitPath string) []string {
	path := configPath(explicitPath)
	data, err := os.ReadFile(path)
	if path == "" || err != nil {
		return nil
	}
	var cf struct {
		Profiles map[string]any `toml:"profiles"`
	}
	if toml.Unmarshal(data, &cf) != nil {
		return nil
	}
	names := make([]string, 0, len(cf.Profiles))
	for n := range cf.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
