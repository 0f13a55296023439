// Package connfast reaches the fast paths of mqttconn.Conn that the managed client (the root
// package) is built on and that are not part of a connection's API: handing the reading
// goroutine off to run a handler inline, how much of the next packets is already buffered,
// queueing packets under the caller's lock with one flush after it, and decoding into reused
// packet values. mqttconn sets the functions when it is initialised; nothing else may. Each
// takes the *mqttconn.Conn (or *mqttconn.Options) as any, since this package cannot import
// mqttconn.
package connfast
