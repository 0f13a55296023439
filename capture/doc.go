// Package capture records connections, as the client saw them, into a pcapng file that
// Wireshark opens with the TLS traffic already decrypted.
//
// A Recorder wraps the client's TCP dial (Config.Dial, or any net.Conn with Wrap) and receives
// the TLS secrets through KeyLog (tls.Config.KeyLogWriter). Every byte the client wrote or read
// becomes a TCP segment between the connection's real addresses and ports, framed as raw IP
// with valid checksums, opened by a SYN exchange and ended by the FIN or RST the client saw.
// The secrets go into Decryption Secrets Blocks (pcapng block type 10, TLS key log) written
// before the packets they decrypt: a connection's packets are held back until its handshake's
// secrets have arrived (matched by the ClientHello's random), it ends, or MaxHeld bytes are
// held, so Wireshark needs no key log file and no preferences.
//
// Wireshark decodes MQTT by port: 1883 (MQTT) and 8883 (MQTT over TLS). For any other port,
// use Decode As (tshark: -d tcp.port==PORT,tls -d tls.port==PORT,mqtt).
//
// The capture holds the session's secrets: anyone with the file can read the traffic. Treat it
// like the private key.
package capture
