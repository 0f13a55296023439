package jobscmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/awsiot"
	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
)

// jobsOptions are the flags of fennec jobs and its subcommands.
type jobsOptions struct {
	conn     cmdutil.ConnFlags
	thing    string
	wait     time.Duration
	peek     bool
	status   string
	details  []string
	expected int64
	count    int
}

func New(streams cmdutil.IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs list|next|describe|update|watch",
		Short: "AWS IoT Jobs: list pending jobs, start the next, update its status",
		Long: `The device side of AWS IoT Jobs for a thing, over MQTT, as AWS IoT Core serves it (and the
embedded broker's AWS emulation: fennec broker --aws --aws-job ID=DOC.json:THING).

The connection flags are those of pub and sub (or a profile). --thing names the thing (default:
the client ID, -i). Each request waits for its accepted or rejected answer; a rejection prints
AWS's code and message and exits 4.`,
		Example: `  fennec jobs list --profile aws --thing dev1
  fennec jobs next --profile aws --thing dev1             # starts it: QUEUED -> IN_PROGRESS
  fennec jobs next --peek --profile aws --thing dev1      # shows it without starting it
  fennec jobs update fw-1 --status IN_PROGRESS --detail progress=50% --profile aws --thing dev1
  fennec jobs update fw-1 --status SUCCEEDED --profile aws --thing dev1
  fennec jobs watch --profile aws --thing dev1            # one JSON line per next-job change`,
	}
	examples := map[string]string{
		"list":            "  fennec jobs list --profile aws --thing dev1\n  fennec jobs list --profile aws --thing dev1 --json",
		"next":            "  fennec jobs next --profile aws --thing dev1 --detail step=download\n  fennec jobs next --peek --profile aws --thing dev1",
		"describe JOB_ID": "  fennec jobs describe fw-1 --profile aws --thing dev1 --json",
		"update JOB_ID":   "  fennec jobs update fw-1 --status IN_PROGRESS --detail progress=50% --profile aws --thing dev1\n  fennec jobs update fw-1 --status FAILED --detail reason=\"checksum mismatch\" --profile aws --thing dev1",
		"watch":           "  fennec jobs watch --profile aws --thing dev1 -C 1",
	}
	sub := func(use, short string, args cobra.PositionalArgs, run func(o *jobsOptions, ctx context.Context, streams cmdutil.IO, j *awsiot.Jobs, args []string) error) (*cobra.Command, *jobsOptions) {
		o := &jobsOptions{}
		c := &cobra.Command{
			Use:     use,
			Short:   short,
			Example: examples[use],
			Args:    args,
			RunE: func(c *cobra.Command, args []string) error {
				return o.run(c.Context(), streams, func(ctx context.Context, j *awsiot.Jobs) error { return run(o, ctx, streams, j, args) })
			},
		}
		o.conn.Register(c)
		c.Flags().StringVar(&o.thing, "thing", "", "the thing whose jobs these are (default: the client ID)")
		c.Flags().DurationVar(&o.wait, "wait", 10*time.Second, "how long to wait for the answer")
		return c, o
	}
	list, _ := sub("list", "List the pending executions (in progress, then queued)", cobra.NoArgs, (*jobsOptions).list)
	next, o := sub("next", "Start the next pending execution and print it with its job document", cobra.NoArgs, (*jobsOptions).next)
	next.Flags().BoolVar(&o.peek, "peek", false, "only show the next execution; do not start it")
	next.Flags().StringArrayVar(&o.details, "detail", nil, "KEY=VALUE status detail set when starting (repeatable)")
	describe, _ := sub("describe JOB_ID", "Print an execution with its job document", cobra.ExactArgs(1), (*jobsOptions).describe)
	update, o := sub("update JOB_ID", "Set the status of an execution", cobra.ExactArgs(1), (*jobsOptions).update)
	update.Flags().StringVar(&o.status, "status", "", "IN_PROGRESS, SUCCEEDED, FAILED or REJECTED")
	update.Flags().StringArrayVar(&o.details, "detail", nil, "KEY=VALUE status detail (repeatable; replaces the execution's details)")
	update.Flags().Int64Var(&o.expected, "expected-version", 0, "apply only if the execution is at this version")
	watch, o := sub("watch", "Print the next pending execution each time it changes (notify-next), as JSON lines", cobra.NoArgs, (*jobsOptions).watch)
	watch.Flags().IntVarP(&o.count, "count", "C", 0, "exit after this many messages")
	watch.Flags().Lookup("wait").Usage = "exit after this long (0: until interrupted)"
	watch.Flags().Lookup("wait").DefValue = "0s"
	cmd.AddCommand(list, next, describe, update, watch)
	return cmd
}

func (o *jobsOptions) run(ctx context.Context, streams cmdutil.IO, op func(context.Context, *awsiot.Jobs) error) error {
	if o.wait < 0 || o.count < 0 {
		return o.conn.Report(streams, cmdutil.UsageErrorf("--wait and -C take positive values"))
	}
	return cmdutil.WithThing(ctx, streams, &o.conn, o.thing, func(ctx context.Context, c *fennec.Client, thing string) error {
		return op(ctx, awsiot.NewJobs(c, thing))
	})
}

func (o *jobsOptions) timed(ctx context.Context) (context.Context, context.CancelFunc) {
	if o.wait > 0 {
		return context.WithTimeout(ctx, o.wait)
	}
	return context.WithCancel(ctx)
}

func (o *jobsOptions) detailMap() (map[string]string, error) {
	if len(o.details) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, d := range o.details {
		k, v, ok := strings.Cut(d, "=")
		if !ok || k == "" {
			return nil, cmdutil.UsageErrorf("--detail %q: KEY=VALUE", d)
		}
		m[k] = v
	}
	return m, nil
}

func (o *jobsOptions) list(ctx context.Context, streams cmdutil.IO, j *awsiot.Jobs, _ []string) error {
	ctx, cancel := o.timed(ctx)
	defer cancel()
	p, err := j.Pending(ctx)
	if err != nil {
		return jobsError("list", j, err)
	}
	if o.conn.JSONOut {
		return cmdutil.PrintJSON(streams, p, true)
	}
	if len(p.InProgress)+len(p.Queued) == 0 {
		fmt.Fprintln(streams.Out, "no pending jobs")
		return nil
	}
	for _, l := range []struct {
		status string
		jobs   []awsiot.JobSummary
	}{{awsiot.StatusInProgress, p.InProgress}, {awsiot.StatusQueued, p.Queued}} {
		for _, s := range l.jobs {
			fmt.Fprintf(streams.Out, "%-11s  %s  (version %d, queued %s)\n", l.status, s.JobID, s.VersionNumber, time.Unix(s.QueuedAt, 0).UTC().Format(time.RFC3339))
		}
	}
	return nil
}

func (o *jobsOptions) next(ctx context.Context, streams cmdutil.IO, j *awsiot.Jobs, _ []string) error {
	details, err := o.detailMap()
	if err != nil {
		return err
	}
	ctx, cancel := o.timed(ctx)
	defer cancel()
	var e *awsiot.JobExecution
	if o.peek {
		e, err = j.Describe(ctx, "$next")
	} else {
		e, err = j.StartNext(ctx, details)
	}
	if err != nil {
		return jobsError("next", j, err)
	}
	if e == nil {
		if o.conn.JSONOut {
			fmt.Fprintln(streams.Out, "null")
		} else {
			fmt.Fprintln(streams.Out, "no pending jobs")
		}
		return nil
	}
	return cmdutil.PrintJSON(streams, e, o.conn.JSONOut)
}

func (o *jobsOptions) describe(ctx context.Context, streams cmdutil.IO, j *awsiot.Jobs, args []string) error {
	ctx, cancel := o.timed(ctx)
	defer cancel()
	e, err := j.Describe(ctx, args[0])
	if err != nil {
		return jobsError("describe", j, err)
	}
	if e == nil {
		fmt.Fprintln(streams.Out, "no pending jobs")
		return nil
	}
	return cmdutil.PrintJSON(streams, e, o.conn.JSONOut)
}

func (o *jobsOptions) update(ctx context.Context, streams cmdutil.IO, j *awsiot.Jobs, args []string) error {
	switch o.status {
	case awsiot.StatusInProgress, awsiot.StatusSucceeded, awsiot.StatusFailed, awsiot.StatusRejected:
	case "":
		return cmdutil.UsageErrorf("--status is required: IN_PROGRESS, SUCCEEDED, FAILED or REJECTED")
	default:
		return cmdutil.UsageErrorf("--status %s: a device sets IN_PROGRESS, SUCCEEDED, FAILED or REJECTED", o.status)
	}
	details, err := o.detailMap()
	if err != nil {
		return err
	}
	ctx, cancel := o.timed(ctx)
	defer cancel()
	st, err := j.Update(ctx, args[0], awsiot.JobUpdate{Status: o.status, Details: details, ExpectedVersion: o.expected})
	if err != nil {
		return jobsError("update", j, err)
	}
	if o.conn.JSONOut {
		return cmdutil.PrintJSON(streams, st, true)
	}
	fmt.Fprintf(streams.Out, "%s: %s (version %d)\n", args[0], st.Status, st.VersionNumber)
	return nil
}

func (o *jobsOptions) watch(ctx context.Context, streams cmdutil.IO, j *awsiot.Jobs, _ []string) error {
	wait := time.Duration(0)
	if o.conn.Changed("wait") {
		wait = o.wait // only when given: its default of 10 s is the other subcommands'
	}
	return cmdutil.WatchLines(ctx, streams, o.count, wait, func(ctx context.Context, emit func([]byte)) error {
		if err := j.OnNext(ctx, func(e *awsiot.JobExecution) {
			b, _ := json.Marshal(e)
			emit(b)
		}); err != nil {
			return jobsError("watch", j, err)
		}
		return nil
	})
}

// jobsError gives a Jobs failure its exit code and hint.
func jobsError(op string, j *awsiot.Jobs, err error) error {
	var je *awsiot.JobsError
	switch {
	case errors.As(err, &je):
		hint := ""
		switch je.Code {
		case "ResourceNotFound":
			hint = "cause: the thing has no execution of that job\nfix: fennec jobs list shows the pending ones"
		case "VersionMismatch":
			hint = "cause: the execution changed since that version\nfix: fennec jobs describe JOB_ID, then update with the version it shows"
		case "InvalidStateTransition", "TerminalStateReached":
			hint = "cause: the execution is already done (SUCCEEDED, FAILED, REJECTED, CANCELED, TIMED_OUT or REMOVED)\nfix: a finished execution cannot change; fennec jobs list shows what is pending"
		case "RequestThrottled":
			hint = "cause: too many Jobs requests\nfix: wait and retry, with backoff"
		case "InvalidJson", "InvalidRequest", "InvalidTopic":
			hint = "cause: AWS refused the request as malformed"
		}
		return &cmdutil.Failure{Code: cmdutil.ExitRefused, Err: err, Step: "jobs", Hint: hint}
	case errors.Is(err, context.DeadlineExceeded):
		return &cmdutil.Failure{Code: cmdutil.ExitTimeout, Err: err, Step: "jobs", Hint: "cause: no accepted or rejected answer in time\nfix: on AWS, the policy must allow iot:Publish on " + j.Topic("*") + " and iot:Subscribe/iot:Receive on their accepted and rejected topics; --wait raises the limit"}
	}
	return cmdutil.Explain(err, nil, "jobs "+op)
}
