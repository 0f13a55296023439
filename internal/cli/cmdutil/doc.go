// Package cmdutil is what the fennec commands share: the connection flags (-h, -p, -L, TLS,
// profiles, -V, -D) and the spec they build (ConnFlags, ConnSpec), the client they drive
// (MQTTClient over the fennec library, with capture and tracing), the output formats of sub,
// and the error model: a Failure carries an exit code, the step that failed and hints, printed
// by PrintError or as JSON. It never parses a command of its own and imports no command.
package cmdutil
