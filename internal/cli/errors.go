package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Exit codes, documented in `fennec help exit-codes`.
const (
	ExitOK          = 0
	ExitError       = 1
	ExitUsage       = 2
	ExitNetwork     = 3
	ExitRefused     = 4
	ExitTimeout     = 5
	ExitInterrupted = 130
)

// usageError marks a command-line mistake (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitError carries an explicit exit code and an optional hint.
type exitError struct {
	code int
	err  error
	hint string
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// ExitCode maps an error to the process exit code.
func ExitCode(err error) int {
	var ee *exitError
	var ue usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		return ExitUsage
	case strings.HasPrefix(err.Error(), "unknown command"), strings.HasPrefix(err.Error(), "accepts "), strings.HasPrefix(err.Error(), "requires "):
		return ExitUsage
	}
	return ExitError
}

func printError(w io.Writer, err error) {
	fmt.Fprintf(w, "fennec: error: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) && ee.hint != "" {
		for _, line := range strings.Split(ee.hint, "\n") {
			fmt.Fprintf(w, "hint: %s\n", line)
		}
	}
}
