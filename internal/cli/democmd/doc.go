// Package democmd is `fennec demo`: the pub/sub demonstration, by default against an embedded
// broker with TLS 1.3 and mutual TLS made for the run, with a packet trace and a verdict.
package democmd
