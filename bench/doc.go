// Package bench measures an MQTT broker and this client under load, as emqtt-bench does: it
// runs publishers, subscribers or idle connections (Mode), paces connects and publishes, and
// reports throughput, latency percentiles, loss, duplicates, reordering, connect rate, CPU
// and memory (Result), as text (Summary), JSON (the Result's tags) or an HTML page with charts
// (WriteReport). The fennec command's `bench` is a thin layer over Run.
//
// Every payload starts with a Header: run, publisher, sequence number, send time. A Tracker
// per subscriber uses it to count what arrived, twice, or out of order, and the end-to-end
// latency (meaningful when publisher and subscriber share a clock: pubsub, or one machine).
// Memory follows what arrives: constant per stream while messages come in order, and bounded
// (MaxStreams, MaxGaps) whatever sequence numbers a peer sends.
//
// It is not a test: nothing here decides whether a figure is good. docs/benchmarks.md says how
// the project's own figures are measured and compared with other clients.
package bench
