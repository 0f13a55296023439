// Command fennec is the Fennec MQTT toolkit: pub, sub, demo, cert, broker and more.
// Run `fennec --help` for the commands. Everything but main lives in internal/cli.
package main
