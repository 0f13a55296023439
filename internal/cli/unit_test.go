package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func TestJoinPropertyArgs(t *testing.T) {
	in := []string{"pub", "-D", "connect", "user-property", "k", "v", "-t", "x", "-D", "publish", "content-type", "text/plain", "-m", "hi"}
	got := JoinPropertyArgs(in)
	want := []string{"pub", "-D", "connect\x1fuser-property\x1fk\x1fv", "-t", "x", "-D", "publish\x1fcontent-type\x1ftext/plain", "-m", "hi"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestParseProps(t *testing.T) {
	ps, err := parseProps([]string{
		"connect\x1fsession-expiry-interval\x1f60",
		"publish\x1fuser-property\x1fa\x1fb",
		"publish\x1fuser-property\x1fa\x1fc",
		"publish\x1fcontent-type\x1ftext/plain",
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := ps.u32("connect", "session-expiry-interval"); v == nil || *v != 60 {
		t.Fatalf("session expiry = %v", v)
	}
	mp := ps.msgProps("publish")
	if mp.ContentType != "text/plain" || len(mp.User) != 2 || mp.User[1] != [2]string{"a", "c"} {
		t.Fatalf("publish props = %+v", mp)
	}
	for _, bad := range []string{
		"connect\x1fcontent-type\x1fx",              // not a CONNECT property
		"puback\x1freason-string\x1fx",              // unknown command
		"subscribe\x1fsubscription-identifier\x1f1", // not supported yet: an error, not ignored
		"publish\x1fmessage-expiry-interval\x1fx",   // not a number
		"connect\x1freceive-maximum\x1f0",           // zero not allowed
		"connect\x1freceive-maximum\x1f70000",       // too large
		"publish\x1fuser-property\x1fonly",          // missing value
	} {
		if _, err := parseProps([]string{bad}); err == nil || ExitCode(err) != ExitUsage {
			t.Errorf("%q: err = %v, want a usage error", bad, err)
		}
	}
}

func TestParseBrokerURL(t *testing.T) {
	for _, tc := range []struct {
		in                       string
		scheme, host, topic, usr string
		port                     int
	}{
		{"mqtts://dev1@example.com:8883/things/dev1/#", "mqtts", "example.com", "things/dev1/#", "dev1", 8883},
		{"mqtt://localhost/a/b", "mqtt", "localhost", "a/b", "", 1883},
		{"mqtts://[::1]/x/+/y", "mqtts", "::1", "x/+/y", "", 8883},
		{"mqtt://h/a/#", "mqtt", "h", "a/#", "", 1883},
		{"wss://h/mqtt", "wss", "h", "", "", 443},
	} {
		got, err := parseBrokerURL(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if got.scheme != tc.scheme || got.host != tc.host || got.topic != tc.topic || got.user != tc.usr || got.defaultPort() != tc.port {
			t.Errorf("%s: got %+v port %d", tc.in, got, got.defaultPort())
		}
	}
	for _, bad := range []string{"localhost:1883", "http://x/", "mqtt://:1883/t", "mqtt://h:99999/t"} {
		if _, err := parseBrokerURL(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestFormatMessage(t *testing.T) {
	exp := uint32(30)
	m := &Message{Topic: "a/b", Payload: []byte("hi"), QoS: 1, Retain: true, PacketID: 7,
		Time: time.Date(2026, 11, 25, 9, 8, 7, 123456789, time.UTC), Props: msgProps{ContentType: "text/plain", MessageExpiry: &exp, User: [][2]string{{"k", "v"}}}}
	for format, want := range map[string]string{
		"%t %p":                "a/b hi",
		"%q %r %m %l":          "1 1 7 2",
		"%x %X":                "6869 6869",
		"[%5t][%-5t][%.1t]":    "[  a/b][a/b  ][a]",
		"%05l":                 "00002",
		"%C %E %P":             "text/plain 30 k:v",
		"@Y-@m-@d @H:@M:@S @N": "2026-11-25 09:08:07 123456789",
		`a\tb\\c%%`:            "a\tb\\c%",
		"%U":                   "1795597687.123456789",
		"%j":                   `{"tst":"2026-11-25T09:08:07.123456Z+0000","topic":"a/b","qos":1,"retain":1,"payloadlen":2,"properties":{"content-type":"text/plain","user-properties":{"k":"v"},"message-expiry-interval":30},"payload":"hi"}`,
	} {
		got, err := FormatMessage(format, m)
		if err != nil || got != want {
			t.Errorf("%q: got %q, %v; want %q", format, got, err, want)
		}
	}
	if _, err := FormatMessage("%J", m); err == nil {
		t.Error("%J with a non-JSON payload: no error")
	}
	// an unknown parameter is refused before connecting, as mosquitto_sub does
	if code, _, errout := run(t, "sub", "-t", "x", "-F", "%t %z", "-p", "1"); code != ExitUsage || !strings.Contains(errout, "unknown parameter %z") {
		t.Errorf("-F %%z: exit %d %s", code, errout)
	}
}

func TestMatchTopic(t *testing.T) {
	for _, tc := range []struct {
		f, t string
		want bool
	}{
		{"a/#", "a", true}, {"a/#", "a/b/c", true}, {"a/+", "a/b", true}, {"a/+", "a/b/c", false},
		{"#", "$SYS/x", false}, {"+/x", "$SYS/x", false}, {"$SYS/#", "$SYS/x", true}, {"a/b", "a/b", true}, {"a/b", "a", false},
	} {
		if got := matchTopic(tc.f, tc.t); got != tc.want {
			t.Errorf("matchTopic(%q, %q) = %v", tc.f, tc.t, got)
		}
	}
	for _, bad := range []string{"", "a/#/b", "a/b#", "a+/b"} {
		if ValidFilter(bad) == nil {
			t.Errorf("validFilter(%q) = nil", bad)
		}
	}
}

func TestMessageJSON(t *testing.T) {
	m := &Message{Topic: "t", Payload: []byte{0xff, 0x00}, QoS: 2, Time: time.Unix(0, 0)}
	var obj map[string]any
	if err := json.Unmarshal(MessageJSON(m), &obj); err != nil {
		t.Fatal(err)
	}
	if obj["topic"] != "t" || obj["qos"] != float64(2) || obj["payload_base64"] != "/wA=" || obj["payload_len"] != float64(2) {
		t.Fatalf("json = %v", obj)
	}
}

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	// a bound, so that a hang fails the test (exit 130) instead of stalling the run
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code = Run(ctx, args, IO{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func TestUsageErrors(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	for _, args := range [][]string{
		{"pub", "-t", "a"},                        // no message source
		{"pub", "-m", "x"},                        // no topic
		{"pub", "-t", "a/#", "-m", "x"},           // wildcard in a topic name
		{"pub", "-t", "a/\xff", "-m", "x"},        // not UTF-8, refused before connecting
		{"pub", "-t", "a/\x00b", "-m", "x"},       // U+0000
		{"pub", "-t", "a", "-m", "x", "-q", "3"},  // bad QoS
		{"pub", "-t", "a", "-m", "x", "-V", "31"}, // MQTT 3.1
		{"pub", "-t", "a", "-m", "x", "--bogus"},  // unknown flag
		{"sub"},                                   // no topic
		{"sub", "-t", "a/#/b"},                    // bad filter
		{"sub", "-t", "a", "--cert", "c.pem"},     // cert without key
		{"pub", "-t", "a", "-m", "x", "--tls-version", "tlsv1.1"},
		{"nosuchcommand"},
		{"pub", "-t", "a", "-m", "x", "--profile", "nope"},
	} {
		code, _, stderr := run(t, args...)
		if code != ExitUsage {
			t.Errorf("%q: exit %d, want 2; stderr %s", args, code, stderr)
		}
		if !strings.HasPrefix(stderr, "fennec: error: ") {
			t.Errorf("%q: stderr %q does not start with fennec: error:", args, stderr)
		}
	}
}

func TestProfile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("FENNEC_PASSWORD", "")
	os.Unsetenv("FENNEC_PASSWORD")
	t.Setenv("LAB_PW", "s3cret")
	if err := os.MkdirAll(filepath.Join(dir, "fennec"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := `
default_profile = "lab"
[profiles.lab]
broker = "mqtt://broker.lab:1884"
username = "lab"
password_env = "LAB_PW"
qos = 1
topic = "lab/#"
keepalive = 30
[profiles.typo]
brokr = "x"
`
	if err := os.WriteFile(filepath.Join(dir, "fennec", "config.toml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	qos := 0
	// a mistake in one profile breaks that profile only, named with its file, line and profile
	p, err := loadProfile("", "typo")
	if err == nil {
		t.Fatalf("a profile with an unknown setting loaded: %+v", p)
	}
	if ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), `"brokr" (line 11)`) || !strings.Contains(err.Error(), `profile "typo"`) {
		t.Fatalf("unknown setting error = %v", err)
	}
	if p, err := loadProfile("", ""); err != nil || p == nil || p.Broker != "mqtt://broker.lab:1884" {
		t.Fatalf("the good default profile beside a broken one: %+v %v", p, err)
	}
	bad := conf + "\n[profiles.types]\nqos = \"high\"\n"
	os.WriteFile(filepath.Join(dir, "fennec", "config.toml"), []byte(bad), 0o600)
	if _, err := loadProfile("", "types"); err == nil || !strings.Contains(err.Error(), `setting "qos": wants a whole number`) || !strings.Contains(err.Error(), "config.toml:14") {
		t.Fatalf("a setting of the wrong type: %v", err)
	}
	conf = strings.Replace(conf, "brokr", "broker", 1)
	os.WriteFile(filepath.Join(dir, "fennec", "config.toml"), []byte(conf), 0o600)
	sub := &subOptions{}
	c := &cobra.Command{Use: "sub"}
	sub.conn.Register(c)
	if err := c.Flags().Parse([]string{"-k", "45"}); err != nil {
		t.Fatal(err)
	}
	spec, err := sub.conn.BuildSpec(IO{Err: &bytes.Buffer{}}, &qos)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Host != "broker.lab" || spec.Port != 1884 || spec.Username != "lab" || string(spec.Password) != "s3cret" || qos != 1 || spec.KeepAlive != 45*time.Second || sub.conn.Topic != "lab/#" {
		t.Fatalf("spec %+v qos %d topic %q", spec, qos, sub.conn.Topic)
	}
}

func TestAWSPort443ALPN(t *testing.T) {
	isolate(t)
	o := &pubOptions{}
	c := &cobra.Command{Use: "pub"}
	o.conn.Register(c)
	if err := c.Flags().Parse([]string{"-L", "mqtts://a1b2c3-ats.iot.us-east-2.amazonaws.com:443/t"}); err != nil {
		t.Fatal(err)
	}
	spec, err := o.conn.BuildSpec(IO{Err: &bytes.Buffer{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.TLS.NextProtos) != 1 || spec.TLS.NextProtos[0] != "x-amzn-mqtt-ca" || spec.TLS.ServerName != "a1b2c3-ats.iot.us-east-2.amazonaws.com" {
		t.Fatalf("ALPN %q, server name %q", spec.TLS.NextProtos, spec.TLS.ServerName)
	}
}

// TestHelpVersionCompletion: every command has examples in --help, no flag's help text is
// mangled, -h is the host; version prints the version; completions are generated and complete
// fennec's own flags; `fennec help exit-codes` lists every code.
func TestHelpVersionCompletion(t *testing.T) {
	isolate(t)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if !c.Runnable() || c.Hidden || c.Parent() != nil && c.Parent().Name() == "completion" {
			return // help topics; the shells under completion explain themselves at length
		}
		path := strings.Fields(c.CommandPath())[1:]
		code, out, errout := run(t, append(path, "--help")...)
		if code != 0 || !strings.Contains(out, "Examples:") {
			t.Errorf("%q --help: exit %d, no examples:\n%s%s", path, code, out, errout)
		}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			// pflag takes a `quoted` word for the value's name: a command quoted that way
			// turned into "--profile fennec help profiles"
			if name, _ := pflag.UnquoteUsage(f); strings.Contains(name, "fennec") {
				t.Errorf("%q --%s: value name %q", path, f.Name, name)
			}
		})
	}
	walk(NewRootCmd(IO{}))

	code, out, _ := run(t, "pub", "--help")
	if code != 0 || !strings.Contains(out, "-h, --host") || !strings.Contains(out, "--profile NAME") {
		t.Errorf("pub --help:\n%s", out)
	}
	code, out, _ = run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "fennec ") || !strings.Contains(out, "go1.") {
		t.Errorf("version: exit %d %q", code, out)
	}
	if code, _, _ = run(t, "version", "extra"); code != ExitUsage {
		t.Errorf("version extra: exit %d, want %d", code, ExitUsage)
	}
	for shell, want := range map[string]string{"bash": "__start_fennec", "zsh": "#compdef fennec", "fish": "complete -c fennec", "powershell": "Register-ArgumentCompleter"} {
		code, out, _ = run(t, "completion", shell)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("completion %s: exit %d, lacks %q", shell, code, want)
		}
	}
	// what the shell scripts ask the binary: fennec's own flags complete
	code, out, _ = run(t, "__complete", "sub", "--retained")
	if code != 0 || !strings.Contains(out, "--retained-only") {
		t.Errorf("__complete sub --retained: exit %d %q", code, out)
	}
	code, out, _ = run(t, "help", "exit-codes")
	for _, c := range []string{"0", "1", "2", "3", "4", "5", "130"} {
		if code != 0 || !strings.Contains(out, "\n  "+c+" ") {
			t.Errorf("help exit-codes lacks %s:\n%s", c, out)
		}
	}
}
