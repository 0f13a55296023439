package pubcmd

import (
	"bytes"
	"os"
	"testing"

	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
	"github.com/spf13/cobra"
)

func TestAWSPort443ALPN(t *testing.T) {
	isolate(t)
	o := &pubOptions{}
	c := &cobra.Command{Use: "pub"}
	o.conn.Register(c)
	if err := c.Flags().Parse([]string{"-L", "mqtts://a1b2c3-ats.iot.us-east-2.amazonaws.com:443/t"}); err != nil {
		t.Fatal(err)
	}
	spec, err := o.conn.BuildSpec(cmdutil.IO{Err: &bytes.Buffer{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.TLS.NextProtos) != 1 || spec.TLS.NextProtos[0] != "x-amzn-mqtt-ca" || spec.TLS.ServerName != "a1b2c3-ats.iot.us-east-2.amazonaws.com" {
		t.Fatalf("ALPN %q, server name %q", spec.TLS.NextProtos, spec.TLS.ServerName)
	}
}

// isolate gives the test a config directory of its own and no profile or password from the
// environment.
func isolate(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("FENNEC_PROFILE", "")
	os.Unsetenv("FENNEC_PASSWORD")
}
