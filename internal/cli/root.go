package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/fennec-mqtt/fennec/internal/cli/benchcmd"
	"github.com/fennec-mqtt/fennec/internal/cli/brokercmd"
	"github.com/fennec-mqtt/fennec/internal/cli/certcmd"
	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
	"github.com/fennec-mqtt/fennec/internal/cli/democmd"
	"github.com/fennec-mqtt/fennec/internal/cli/doctorcmd"
	"github.com/fennec-mqtt/fennec/internal/cli/jobscmd"
	"github.com/fennec-mqtt/fennec/internal/cli/provisioncmd"
	"github.com/fennec-mqtt/fennec/internal/cli/pubcmd"
	"github.com/fennec-mqtt/fennec/internal/cli/shadowcmd"
	"github.com/fennec-mqtt/fennec/internal/cli/subcmd"
	"github.com/spf13/cobra"
)

// IO is the standard streams of one invocation.
type IO = cmdutil.IO

// Main runs the fennec command with args and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return Run(ctx, args, cmdutil.IO{In: stdin, Out: stdout, Err: stderr})
}

// Run is Main with a caller's context; tests use it. Cancelling ctx is an interruption (exit 130).
func Run(ctx context.Context, args []string, streams cmdutil.IO) int {
	root := NewRootCmd(streams)
	root.SetArgs(cmdutil.JoinPropertyArgs(args))
	err := root.ExecuteContext(ctx)
	if err == nil {
		return cmdutil.ExitOK
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return cmdutil.ExitInterrupted
	}
	var q cmdutil.QuietError
	if !errors.As(err, &q) {
		cmdutil.PrintError(streams.Err, err)
	}
	return cmdutil.ExitCode(err)
}

// NewRootCmd builds the command tree.
func NewRootCmd(streams cmdutil.IO) *cobra.Command {
	root := &cobra.Command{
		Use:   "fennec",
		Short: "MQTT toolkit for devices: pub, sub, demo, certificates, broker",
		Long: `fennec publishes and subscribes like mosquitto_pub and mosquitto_sub, runs the pub/sub demo
against an embedded broker with TLS 1.3 and mutual TLS, and explains what failed when a
connection does not work: which step (DNS, TCP, TLS, MQTT), why, and how to fix it.`,
		Example: `  fennec demo                                   # the pub/sub demo, no setup needed
  fennec sub -t 'sensors/#' -v                  # print everything under sensors/
  fennec pub -t sensors/t1 -m 21.5 -q 1         # publish one message
  fennec pub -t t -m hi -d                      # ... with a trace of every packet
  fennec help exit-codes                        # what the exit codes mean`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return cmdutil.FlagError(err) })
	root.AddCommand(
		pubcmd.New(streams),
		subcmd.New(streams),
		democmd.New(streams),
		certcmd.New(streams),
		brokercmd.New(streams),
		doctorcmd.New(streams),
		benchcmd.New(streams),
		shadowcmd.New(streams),
		jobscmd.New(streams),
		provisioncmd.New(streams),
		newVersionCmd(streams),
		newHelpTopic("diagnosis", "The cause IDs of fennec doctor and --json", doctorcmd.DiagnosisHelp()),
		newHelpTopic("exit-codes", "What fennec's exit codes mean", exitCodesHelp),
		newHelpTopic("profiles", "Named connection profiles in the config file", cmdutil.ProfilesHelp),
		newHelpTopic("format", "The -F output format of fennec sub", cmdutil.FormatHelp),
		newHelpTopic("properties", "MQTT 5 properties with -D", propertiesHelp),
	)
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Example = `  # bash, for the current shell
  source <(fennec completion bash)
  # zsh, for every new shell
  fennec completion zsh > "${fpath[1]}/_fennec"
  # fish
  fennec completion fish > ~/.config/fish/completions/fennec.fish`
		}
	}
	return root
}

// newHelpTopic makes a help-only command: `fennec help NAME` prints text.
func newHelpTopic(name, short, text string) *cobra.Command {
	return &cobra.Command{Use: name, Short: short, Long: text}
}

func newVersionCmd(streams cmdutil.IO) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version of fennec",
		Example: "  fennec version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(streams.Out, versionString())
			return nil
		},
	}
}

func versionString() string {
	v, extra := "(devel)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if len(s.Value) > 12 {
					s.Value = s.Value[:12]
				}
				extra += " commit " + s.Value
			case "vcs.modified":
				if s.Value == "true" {
					extra += " (modified)"
				}
			}
		}
		extra += ", " + bi.GoVersion
	}
	return "fennec " + v + extra
}

const exitCodesHelp = `fennec's exit status tells a script what kind of failure happened:

  0    success
  1    error: anything not listed below (a file that cannot be read, a bad certificate file, ...)
  2    usage: wrong flags or arguments; nothing was sent
  3    network or TLS: DNS lookup, TCP connect, or the TLS handshake failed, or the connection
       broke; the hint lines name the step
  4    refused by the server: CONNACK with a refusal code (bad user name or password, not
       authorized, client ID rejected, ...), a SUBACK or PUBACK failure code, a DISCONNECT from
       the server, or a server that closes the connection right after CONNECT without any
       CONNACK (what AWS IoT Core does when the policy does not allow iot:Connect)
  5    timeout: the connection or an acknowledgement did not come in time
  27   sub -W ran out (as mosquitto_sub: also when no -C was given)
  130  interrupted (Ctrl-C or SIGTERM)

Every failure prints "fennec: error: ..." on stderr, followed by "hint:" lines: the step that
failed (DNS, TCP, TLS, MQTT), the cause in plain words and the fix. With --json the failure is
also printed on stdout as one object: {"error": ..., "exit_code": N, "step": ..., "hints": [...]}.
With --quiet nothing is printed and only the exit status tells.
`

const propertiesHelp = `-D sets an MQTT 5 property, as mosquitto_pub and mosquitto_sub do (and selects MQTT 5):

  -D COMMAND IDENTIFIER VALUE
  -D COMMAND user-property NAME VALUE

COMMAND is the packet that carries the property, IDENTIFIER its name in the MQTT 5
specification with '-' between words:

  connect      session-expiry-interval, receive-maximum, maximum-packet-size,
               request-response-information, request-problem-information,
               authentication-method, authentication-data, user-property
  publish      payload-format-indicator, message-expiry-interval, response-topic,
               correlation-data, content-type, user-property
  will         will-delay-interval, payload-format-indicator, message-expiry-interval,
               content-type, response-topic, correlation-data, user-property

Not supported yet (an error, not silently ignored): properties on SUBSCRIBE, UNSUBSCRIBE and
DISCONNECT, and topic aliases.

Examples:
  fennec pub -t req -m '{}' -D publish response-topic replies/dev1 -D publish correlation-data 42
  fennec pub -t t -m hi -D publish message-expiry-interval 60 -D publish user-property src cli
  fennec sub -t 'a/#' -D connect session-expiry-interval 3600 -c -i dev1
  fennec pub -t t -m bye --will-topic status/dev1 --will-payload gone -D will will-delay-interval 10
`
