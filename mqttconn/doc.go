// Package mqttconn is one MQTT network connection: dialing over TCP, TLS, WebSocket or WebSocket
// over TLS, the CONNECT/CONNACK exchange, keep alive, reading on the caller's goroutine and writing
// on a goroutine that exists only while there is something to write, and typed errors for
// everything that can go wrong on the way.
//
// Most programs use the fennec package, which adds reconnection, sessions and message routing on
// top; use mqttconn directly to probe a broker step by step or to build another client.
//
// # Dialing
//
// Dial performs the connection phases in order — DNS, TCP, TLS, WebSocket upgrade (subprotocol
// "mqtt", default path /mqtt), MQTT — within the caller's context, and returns a *ConnectError
// naming the phase that failed. A CONNACK that refuses the connection becomes a *ReasonError
// carrying the return code (3.1.1) or reason code (5.0).
//
// # Running
//
// After Dial, call Run on one goroutine: it reads packets and hands each one to
// Options.OnPacket until the connection ends, then returns the cause. Send and SendNow queue
// packets for the writing goroutine (started on demand), which encodes everything queued into
// one buffer and writes it with a single Write: many small packets cost one system call (and
// one TLS record). Payloads of 16 KiB and more are written from the caller's slice rather than
// copied. Send waits while Options.QueueBytes are queued; SendNow does not (for
// acknowledgements, whose number the protocol bounds). Disconnect sends DISCONNECT after what
// is queued and closes.
//
// The managed client (the root package) uses four more paths that are not part of this API and
// reaches them through internal/connfast: handing the reading goroutine to a handler that runs
// inline (Run then returns ErrHandedOff and reading continues on another goroutine), the bytes
// already buffered, queueing under its own lock with one flush after, and decoding into reused
// packet values. A connection's API stays dial, read (Run with OnPacket), write, close.
//
// Reads go through an adaptive buffer: 256 bytes while idle, growing to 32 KiB under load. On
// Linux, TCP_QUICKACK is re-armed before a read while the broker owes us a reply (CONNACK, PUBACK,
// SUBACK, PINGRESP, …), so a broker that writes two small packets in a row without TCP_NODELAY
// does not hold the reply behind our delayed ACK (about 40 ms per exchange). When no reply is
// awaited the ACK rides on our next packet: no setsockopt and no extra ACK segment per read.
//
// # Keep alive and faults
//
// With a keep alive K, PINGREQ goes out when nothing was sent or received for about ¾ K
// [MQTT-3.1.2-23], and every read starts with 1.25 K to 1.5 K left before its deadline (the
// deadline moves in steps of ¼ K, not before every read): a silent broker or a half-open TCP
// connection ends the connection with ErrKeepAliveTimeout within 1.5 K. Writes that do not
// complete within Options.WriteTimeout (up to 1.25 × it, in the same way) end it with
// ErrWriteTimeout. A malformed or oversized packet or a second
// CONNACK ends it with a *ProtocolError (errors.Is ErrProtocolViolation); for MQTT 5 the client
// first sends DISCONNECT with the matching reason code [MQTT-4.13.1-1].
package mqttconn
