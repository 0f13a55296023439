package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newDemoCmd(streams IO) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Run the pub/sub demo against the embedded broker (TLS 1.3, mutual TLS, QoS 0/1/2)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(streams.Out, "fennec demo: will start the embedded broker with TLS 1.3 and mutual TLS on a free loopback port,")
			fmt.Fprintln(streams.Out, "connect a client with its certificate, subscribe, publish at QoS 0, 1 and 2 and print a summary.")
			return nil
		},
	}
}
