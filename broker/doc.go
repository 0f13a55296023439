// Package broker is Fennec's embedded development broker, built on mochi-mqtt. It runs in a test
// or behind `fennec broker`, so that a device's whole path — TCP, TLS 1.3, client certificates,
// MQTT 3.1.1 and 5, authorization, even AWS IoT Core's peculiar behaviour — can be tried on one
// machine before a board is flashed or a cloud bill runs.
//
// # Start a broker
//
//	b, err := broker.New(broker.Options{
//		Listeners: []broker.Listener{
//			{URL: "tcp://127.0.0.1:1883"},
//			{URL: "tls://127.0.0.1:8883", TLS: &broker.TLS{
//				CertFile: "server.pem", KeyFile: "server-key.pem",
//				ClientCAFile: "ca.pem", RequireClientCert: true, // mutual TLS, TLS 1.3 by default
//			}},
//		},
//		Logger: slog.Default(),
//	})
//	if err != nil { … }
//	if err := b.Start(ctx); err != nil { … }
//	defer b.Close()
//	l, _ := b.Listener("tls") // l.Addr is the bound host:port, l.ClientURL() "mqtts://…"
//
// Listeners are tcp://, tls://, ws:// and wss://; port 0 picks a free port, and Listeners reports
// the bound addresses. TLS listeners speak TLS 1.3 unless TLS.MinVersion allows 1.2; nothing older
// is offered.
//
// # Identity, authentication, authorization
//
// With RequireClientCert the TLS handshake refuses clients without a certificate signed by the
// client CA. The certificate's common name (or first SAN) becomes the client's identity, which
// the ACL file (see ACL, LoadACL) maps to allowed publish and subscribe filters. Clients without a
// certificate authenticate with a username and a PBKDF2-SHA256 password hash (HashPassword), or
// connect anonymously when the ACL allows it. Without an ACL everything is allowed.
//
// # AWS IoT Core emulation
//
// Options.AWS registers device certificates (LoadDevices), evaluates an AWS IoT policy document
// (LoadPolicy) for iot:Connect, iot:Publish, iot:Subscribe and iot:Receive with the variables
// ${iot:ClientId} and ${iot:Connection.Thing.ThingName}, and reproduces AWS's differences from
// the MQTT specifications: a denied connection is closed without CONNACK, an MQTT 3.1.1 client
// that publishes or subscribes where it may not is disconnected while an MQTT 5 client gets
// reason code 0x87, QoS 2 is not supported, topics are limited to 256 bytes and 7 slashes and
// payloads to 128 KiB, a second connection with a client ID disconnects the first, and keep-alive
// values below 30 s become 30 s. docs/aws-emulation.md cites the AWS page behind each behaviour.
//
// # Persistent sessions
//
// A client that connects with clean session 0 (3.1.1) or a Session Expiry Interval (MQTT 5)
// keeps its subscriptions while it is away, and the QoS 1 and 2 messages published to them are
// stored for it [MQTT-3.1.2-5] — authorized with the identity it had — and re-sent in the order
// they were stored when it reconnects [MQTT-4.6.0-1]. Sessions live in memory; at most 100,000
// messages are stored per session (Options.MaxStoredMessages), later ones are dropped for that
// session and counted; a stored message is
// dropped 24 h after it arrived. With the AWS emulation a session expires one hour after the
// disconnection (AWSSessionExpiry). docs/broker.md has the details, including the mochi
// behaviours the broker works around.
//
// # Faults
//
// Broker.Faults injects the failures a client must survive: RefuseConnections, RefuseConnects,
// DropClient, StopReading and DelayAcks.
//
// For tests, package brokertest starts a broker with a throwaway PKI on free ports.
package broker
