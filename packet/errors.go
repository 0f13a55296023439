package packet

import "errors"

// Sentinel errors for errors.Is. Every *Error matches exactly one of them, chosen by its Reason.
var (
	// ErrMalformed: the packet breaks the wire format (reason 0x81, Malformed Packet).
	ErrMalformed = errors.New("packet: malformed packet")
	// ErrProtocol: the packet breaks a protocol rule (reason 0x82, Protocol Error).
	ErrProtocol = errors.New("packet: protocol error")
	// ErrPacketTooLarge: the packet is larger than the maximum packet size (reason 0x95).
	ErrPacketTooLarge = errors.New("packet: packet too large")
	// ErrUnsupportedVersion: a CONNECT asks for a protocol name or level this package does not
	// speak (reason 0x84; a 3.1.1 server answers with return code 0x01).
	ErrUnsupportedVersion = errors.New("packet: unsupported protocol version")
)

// Error is a violation of the MQTT wire format or protocol found while encoding or decoding.
type Error struct {
	Type   Type       // packet type concerned (0 when unknown)
	Rule   string     // conformance statement, e.g. "[MQTT-3.3.1-4]" ("" when none applies)
	Reason ReasonCode // MalformedPacket, ProtocolError, PacketTooLarge or UnsupportedProtocolVersion
	Msg    string     // plain words
}

// Error returns e.g. "packet: PUBLISH: QoS 3 is not allowed [MQTT-3.3.1-4]".
func (e *Error) Error() string {
	s := "packet: "
	if e.Type != 0 {
		s += e.Type.String() + ": "
	}
	s += e.Msg
	if e.Rule != "" {
		s += " " + e.Rule
	}
	return s
}

// Is matches ErrMalformed, ErrProtocol, ErrPacketTooLarge or ErrUnsupportedVersion according to
// e.Reason.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrMalformed:
		return e.Reason == MalformedPacket
	case ErrProtocol:
		return e.Reason == ProtocolError
	case ErrPacketTooLarge:
		return e.Reason == PacketTooLarge
	case ErrUnsupportedVersion:
		return e.Reason == UnsupportedProtocolVersion
	}
	return false
}

func malformed(t Type, rule, msg string) *Error {
	return &Error{Type: t, Rule: rule, Reason: MalformedPacket, Msg: msg}
}

func protoErr(t Type, rule, msg string) *Error {
	return &Error{Type: t, Rule: rule, Reason: ProtocolError, Msg: msg}
}

// rule picks the conformance number of the version concerned.
func rule(v Version, r311, r5 string) string {
	if v == V5 {
		return r5
	}
	return r311
}
