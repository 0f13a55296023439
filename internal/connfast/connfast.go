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
	// ReusePackets lets the connection decode each PUBLISH and PUBACK into a value reused for
	// the next one (OnPacket and Trace must not keep them); called before Run.
	ReusePackets func(conn any)
)
