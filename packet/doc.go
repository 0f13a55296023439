// Package packet encodes and decodes every MQTT control packet of MQTT 3.1.1 and MQTT 5.0.
//
// It is a pure codec: no goroutines, no network, standard library only. One set of types serves
// both versions (Connect, Connack, Publish, Puback, Pubrec, Pubrel, Pubcomp, Subscribe, Suback,
// Unsubscribe, Unsuback, Pingreq, Pingresp, Disconnect, Auth); the version is a parameter of
// encoding and decoding. Every rule the specifications put on the wire is enforced on both
// encode and decode, and each rejection is a *Error that names the rule it enforces.
//
// # Encoding a packet
//
// Every packet type has Append, which appends the whole packet (fixed header included) to a
// buffer and returns it, in the style of strconv.AppendInt. Reusing the buffer makes encoding
// allocation-free:
//
//	buf, err := (&packet.Publish{Topic: "sensors/1", QoS: packet.QoS1, PacketID: 7, Payload: data}).Append(buf[:0], packet.V5)
//
// Append validates what the spec demands of the sender (QoS 3, a zero packet identifier, a
// wildcard in a topic name, ill-formed UTF-8, a property the packet may not carry, ...) and
// returns dst unchanged with a *Error when the packet breaks a rule.
//
// # Reading and writing a connection
//
// Reader reads packets from a stream through its own buffer and refuses a packet larger than the
// maximum packet size from its fixed header alone, before allocating anything for it; a large body
// is allocated as its bytes arrive, so a peer cannot make the reader allocate what it merely
// claims. Writer issues exactly one Write per packet (one TLS record on a TLS connection) and, on
// TCP and Unix connections, sends large PUBLISH payloads straight from the caller's slice with
// writev; WritePackets coalesces several packets into one Write.
//
//	r := packet.NewReader(conn, 1<<20) // refuse packets over 1 MiB
//	w := packet.NewWriter(conn)
//	p, err := r.ReadPacket(packet.V5)
//	if errors.Is(err, packet.ErrPacketTooLarge) { ... send DISCONNECT 0x95 ... }
//
// # Decoding from memory
//
// Decode takes the first byte of a packet and its body (the bytes after the remaining length);
// Unmarshal takes one whole packet and Split finds the packet boundaries in a buffer. Byte slices
// in decoded packets (payloads, binary properties, passwords) alias the input, capped so that
// appending to them cannot overwrite the bytes after them; strings are copies. To decode without
// allocating a new struct each time, (*Publish).DecodeBody decodes into an existing Publish: the
// topic string is then the only allocation.
//
// A CONNECT is decoded whatever version the caller passes: its version comes from the packet
// (Connect.Version), and an unknown protocol name or level is an error matching
// ErrUnsupportedVersion, so a server can answer with the right CONNACK.
//
// # Properties
//
// Properties is a value struct embedded in every packet that has properties. Presence is kept
// apart from the value, so an absent property differs from one sent as zero: assign through the
// setters (p.Props.SetReceiveMaximum(20)) or assign the field and call Set; read with Has.
// UserProperties and SubscriptionIdentifiers are present when non-empty. Which properties a
// packet may carry is enforced in both directions, as are duplicates of single-valued properties
// and the values the spec forbids (Topic Alias 0, Receive Maximum 0, booleans other than 0 or 1).
// Properties are ignored when encoding for MQTT 3.1.1. A decoded packet remembers the order its
// properties came in, so re-encoding it reproduces the received bytes.
//
// # Errors
//
// Every violation is a *Error with the packet type, the conformance statement (e.g.
// "[MQTT-3.3.1-4]"), the reason code a peer should be told (Malformed Packet, Protocol Error,
// Packet too large, Unsupported Protocol Version) and plain words. Match the class with
// errors.Is(err, ErrMalformed), ErrProtocol, ErrPacketTooLarge or ErrUnsupportedVersion. Errors
// from the underlying stream (io.EOF, io.ErrUnexpectedEOF, network errors) pass through unchanged.
//
// # Reason codes
//
// ReasonCode carries MQTT 5 reason codes, with String (the spec's wording, e.g. "Not
// authorized") and IsError (0x80 and above). MQTT 3.1.1 CONNACK return codes travel in the same
// field unchanged; ConnackReturnCodeString gives their 3.1.1 meaning.
package packet
