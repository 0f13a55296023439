package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func TestMessageJSON(t *testing.T) {
	m := &cmdutil.Message{Topic: "t", Payload: []byte{0xff, 0x00}, QoS: 2, Time: time.Unix(0, 0)}
	var obj map[string]any
	if err := json.Unmarshal(cmdutil.MessageJSON(m), &obj); err != nil {
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
		if code != cmdutil.ExitUsage {
			t.Errorf("%q: exit %d, want 2; stderr %s", args, code, stderr)
		}
		if !strings.HasPrefix(stderr, "fennec: error: ") {
			t.Errorf("%q: stderr %q does not start with fennec: error:", args, stderr)
		}
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
	if code, _, _ = run(t, "version", "extra"); code != cmdutil.ExitUsage {
		t.Errorf("version extra: exit %d, want %d", code, cmdutil.ExitUsage)
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

// TestFormatUnknownParameter: an unknown -F parameter is refused before connecting, as
// mosquitto_sub does.
func TestFormatUnknownParameter(t *testing.T) {
	if code, _, errout := run(t, "sub", "-t", "x", "-F", "%t %z", "-p", "1"); code != cmdutil.ExitUsage || !strings.Contains(errout, "unknown parameter %z") {
		t.Errorf("-F %%z: exit %d %s", code, errout)
	}
}

// TestTemplateNeedsAWS: --aws-template without --aws is a usage error.
func TestTemplateNeedsAWS(t *testing.T) {
	if code, _, errout := run(t, "broker", "--aws-template", "fleet=x-{S}"); code != cmdutil.ExitUsage || !strings.Contains(errout, "need --aws") {
		t.Fatalf("--aws-template without --aws: exit %d %s", code, errout)
	}
}
