// Package connfast reaches the fast paths of mqttconn.Conn that the managed client (the root
// package) is built on and that are not part of a connection's API: handing the reading
// goroutine off to run a handler inline, how much of the next packets is already buffered,
// queueing packets under the caller's lock with one flush after it, and decoding into reused
// packet values. mqttconn sets the functions when it is initialised; nothing else may. Each
// takes the *mqttconn.Conn (or *mqttconn.Options) as any, since this package cannot import
// mqttconn.
package connfast

import "github.com/fennec-mqtt/fennec/packet"

var (
	// HandOff makes the connection's Run return once the running OnPacket returns, so that
	// OnPacket may keep the goroutine; false when OnPacket is not running or already handed off.
	HandOff func(conn any) bool
	// Buffered is the number of bytes of further packets already read and waiting.
	Buffered func(conn any) int
	// Queue queues p without starting the writer; Flush must follow.
	Queue func(conn any, p packet.Packet, done func(error)) error
	// Flush writes what Queue queued, inline when that cannot block.
	Flush func(conn any)
	// SetReusePackets lets the connections dialled with opts decode each PUBLISH and PUBACK
	// into a value reused for the next one (OnPacket and Trace must not keep them).
	SetReusePackets func(opts any, on bool)
)
