// Command fennec is the Fennec MQTT toolkit: pub, sub, demo, cert, broker and more.
// Run `fennec --help` for the commands.
package main

import (
	"os"

	"github.com/fennec-mqtt/fennec/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
