// Package benchmarks measures Fennec beside the Go MQTT libraries people use today, on the same
// inputs and in the same run. It is its own module so that the comparison peers never become
// dependencies of the library. See docs/benchmarks.md for the results and the commands.
package benchmarks
