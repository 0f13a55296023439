// Package fennec is an MQTT 3.1.1 and 5.0 client for devices: publish and subscribe at QoS 0, 1
// and 2, sessions that lose nothing across reconnects and restarts, TLS 1.2/1.3 with mutual TLS,
// and WebSockets.
package fennec
