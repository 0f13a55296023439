// Package subcmd is `fennec sub`: subscribe and print messages (-v, -F, -C, -W, -R, -E and
// --json), as mosquitto_sub does.
package subcmd
