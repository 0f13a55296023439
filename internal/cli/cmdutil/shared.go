package cmdutil

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/fennec-mqtt/fennec/topic"
)

func ShellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`#*?[]{}()<>|&;!~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func PrintJSON(streams IO, v any, compact bool) error {
	var b []byte
	if compact {
		b, _ = json.Marshal(v)
	} else {
		b, _ = json.MarshalIndent(v, "", "  ")
	}
	fmt.Fprintf(streams.Out, "%s\n", b)
	return nil
}

// ValidFilter checks a topic filter the way a broker will [MQTT-4.7.1-1], [MQTT-4.7.1-2], [MQTT-4.7.3-1].
func ValidFilter(f string) error { return topic.ValidateFilter(f) }

// IO is the standard streams of one invocation.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
}
