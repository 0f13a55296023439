package subcmd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
	"github.com/spf13/cobra"
)

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
		if cmdutil.ValidFilter(bad) == nil {
			t.Errorf("validFilter(%q) = nil", bad)
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
	p, err := cmdutil.LoadProfile("", "typo")
	if err == nil {
		t.Fatalf("a profile with an unknown setting loaded: %+v", p)
	}
	if cmdutil.ExitCode(err) != cmdutil.ExitUsage || !strings.Contains(err.Error(), `"brokr" (line 11)`) || !strings.Contains(err.Error(), `profile "typo"`) {
		t.Fatalf("unknown setting error = %v", err)
	}
	if p, err := cmdutil.LoadProfile("", ""); err != nil || p == nil || p.Broker != "mqtt://broker.lab:1884" {
		t.Fatalf("the good default profile beside a broken one: %+v %v", p, err)
	}
	bad := conf + "\n[profiles.types]\nqos = \"high\"\n"
	os.WriteFile(filepath.Join(dir, "fennec", "config.toml"), []byte(bad), 0o600)
	if _, err := cmdutil.LoadProfile("", "types"); err == nil || !strings.Contains(err.Error(), `setting "qos": wants a whole number`) || !strings.Contains(err.Error(), "config.toml:14") {
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
	spec, err := sub.conn.BuildSpec(cmdutil.IO{Err: &bytes.Buffer{}}, &qos)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Host != "broker.lab" || spec.Port != 1884 || spec.Username != "lab" || string(spec.Password) != "s3cret" || qos != 1 || spec.KeepAlive != 45*time.Second || sub.conn.Topic != "lab/#" {
		t.Fatalf("spec %+v qos %d topic %q", spec, qos, sub.conn.Topic)
	}
}
