// Package fennec is an MQTT 3.1.1 and 5.0 client for devices: publish and subscribe at QoS 0, 1
// and 2, sessions that lose nothing across reconnects and restarts, TLS 1.2/1.3 with mutual TLS,
// and WebSockets.
//
// # Connecting
//
// Fill a Config — a plain struct whose zero fields all have a documented meaning — and call
// Connect. It returns once the broker accepted the connection:
//
//	c, err := fennec.Connect(ctx, fennec.Config{
//		Server:    "mqtts://broker.example.com:8883",
//		ClientID:  "sensor-17",
//		TLSConfig: tlsConfig, // from pki.ClientConfig, or nil for system roots
//	})
//
// Server accepts mqtt://, mqtts://, ws:// and wss:// URLs (see ParseURL). Version selects MQTT
// 5.0 (the default) or 3.1.1; the client never falls back to another version by itself: a broker
// that refuses it fails Connect with a *ReasonError.
//
// Every connection failure is a *ConnectError naming the phase that failed (PhaseDNS, PhaseTCP,
// PhaseTLS, PhaseWebSocket, PhaseMQTT); a refused CONNECT wraps a *ReasonError carrying the
// return or reason code and its meaning. Use errors.As to take them apart and Temporary to decide
// whether retrying makes sense.
//
// # Publishing
//
// Publish waits for the outcome: QoS 0 returns when the packet was written, QoS 1 when PUBACK
// arrived, QoS 2 when PUBCOMP arrived. PublishAsync returns a Token instead and lets many messages
// be in flight at once, in order, up to the broker's Receive Maximum and Config.MaxInflight.
// Packets queued together leave in one write.
//
// While the client is offline (reconnecting), published messages wait in a bounded queue
// (Config.MaxOfflineQueue); when it is full Publish fails with ErrQueueFull. A message is never
// reported as sent when it was dropped.
//
// # Subscribing
//
// Subscribe takes a handler and one or more packet.Subscription values; messages are routed to
// the handlers of every matching filter (wildcards + and # as the specification defines them,
// shared subscriptions by their filter). Handlers run one at a time, in arrival order, outside
// the client's locks: a handler may publish, subscribe or unsubscribe and wait for the outcome.
// QoS 1 and 2 messages are acknowledged after their handler returns, so a slow handler slows the
// broker down instead of piling messages up in memory. Inbound QoS 2 messages are delivered
// exactly once: duplicates are recognised by packet ID until PUBREL.
//
// # Reconnecting and sessions
//
// A lost connection is re-established with exponential backoff and jitter (Config.Backoff).
// Unacknowledged QoS 1 and 2 messages are sent again in their original order with the DUP flag;
// when the broker lost the session, subscriptions are sent again. OnConnectionUp and
// OnConnectionLost report each transition with its cause. ConnectRetry makes the first
// connection retry too.
//
// With a durable session.Store (filestore.Open, in session/filestore) a message accepted by Publish survives a
// crash of the process: a new process with the same ClientID and store sends it.
//
// # Keep alive and flow control
//
// The client sends PINGREQ when the connection is idle and detects a dead connection — including
// a half-open TCP connection — within 1.5 times the keep alive. A broker that stops reading fails
// the connection with ErrWriteTimeout. The broker's Receive Maximum and Maximum Packet Size are
// honoured, and ours are enforced: a packet above Config.MaxPacketSize, like any broker that
// breaks the protocol, gets the connection closed with a *ProtocolError saying what the broker
// did, and the client reconnects with its session intact. A broker that exceeds
// Config.ReceiveMaximum (mosquitto 2.0.11 does under load) meets back-pressure instead: memory
// stays bounded without a disconnect loop.
//
// # Observability
//
// Config.Logger receives connection events (never passwords). Config.Trace sees every packet in
// both directions and the TLS facts of each connection; the CLI's --debug uses it.
//
// # Stopping
//
// Disconnect sends DISCONNECT, Close just closes (the broker then publishes the will message).
// Both stop reconnecting, end the client's goroutines and report QoS 1/2 messages still
// unacknowledged with an error wrapping ErrUnacknowledged.
//
// The package builds on mqttconn (one network connection) and session (session state and its
// stores); Client.Conn exposes the current connection.
package fennec
