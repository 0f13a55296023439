// Package session holds the parts of an MQTT client session that must outlive a connection, and
// optionally a process: packet identifiers, outbound QoS 1/2 messages until the broker has
// acknowledged them, and inbound QoS 2 packet IDs between PUBREC and PUBREL.
//
// Outbound and Inbound are the session's state machines: deterministic, with no I/O, no
// goroutines and no locks. Their inputs are publishes, packets received, connection up (with
// Session Present) and down, finished writes and the store's contents at start; their outputs
// are the packets to send (Outbound.Next), completions (Outbound.OnDone) and what to make durable
// (the results of Outbound.Ack and Inbound.Handled). fennec.Client drives them.
//
// A Store keeps that state. MemoryStore survives reconnects; filestore.Store (bbolt, in the
// package session/filestore, so that a client without it does not link bbolt) survives crashes:
//
//	store, err := filestore.Open("/var/lib/sensor/mqtt-session.db")
//	if err != nil { … }
//	defer store.Close()
//	c, err := fennec.Connect(ctx, fennec.Config{Server: …, ClientID: "sensor-17", Store: store,
//		SessionExpiry: 24 * time.Hour})
//
// The client writes a message to the store before Publish accepts it, outside its locks (a slow
// disk delays that publisher only; filestore commits concurrent writes with one fsync), marks a QoS 2 message
// released before it sends PUBREL, and records an inbound QoS 2 packet ID before it sends PUBREC.
// After a restart with the same client ID, everything still in the store is sent again, in the
// original order (Record.Seq).
//
// IDs allocates packet identifiers round-robin without ever reusing one in use [MQTT-2.2.1-3].
// MarshalPublish and UnmarshalPublish turn a PUBLISH into a Record's bytes and back.
package session
