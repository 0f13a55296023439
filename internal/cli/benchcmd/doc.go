// Package benchcmd is `fennec bench pub|sub|pubsub|conn`: load a broker over the bench
// package, with live progress, a summary, --json and an HTML report.
package benchcmd
