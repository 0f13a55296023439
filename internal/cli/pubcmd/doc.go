// Package pubcmd is `fennec pub`: publish one message, a file, stdin or lines of stdin, as
// mosquitto_pub does. New returns the command; its options struct and run function are the rest.
package pubcmd
