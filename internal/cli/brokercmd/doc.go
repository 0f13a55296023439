// Package brokercmd is `fennec broker`: the embedded broker on TCP, TLS and WebSockets, with
// mutual TLS, an ACL and the AWS IoT Core emulation, printing commands that work as printed.
package brokercmd
