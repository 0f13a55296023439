package packet

import "strconv"

// Version is the MQTT protocol version, as carried in CONNECT's protocol level byte.
type Version byte

// The protocol versions this package speaks.
const (
	V311 Version = 4 // MQTT 3.1.1
	V5   Version = 5 // MQTT 5.0
)

// String returns "3.1.1" or "5.0".
func (v Version) String() string {
	switch v {
	case V311:
		return "3.1.1"
	case V5:
		return "5.0"
	}
	return "Version(" + strconv.Itoa(int(v)) + ")"
}

// Valid reports whether v is V311 or V5.
func (v Version) Valid() bool { return v == V311 || v == V5 }

// QoS is an MQTT quality-of-service level: 0, 1 or 2.
type QoS byte

// The QoS levels.
const (
	QoS0 QoS = 0 // at most once
	QoS1 QoS = 1 // at least once
	QoS2 QoS = 2 // exactly once
)

// String returns "QoS 0", "QoS 1" or "QoS 2".
func (q QoS) String() string { return "QoS " + strconv.Itoa(int(q)) }

// Valid reports whether q is 0, 1 or 2.
func (q QoS) Valid() bool { return q <= 2 }

// Type is the MQTT control packet type (the high nibble of the first byte).
type Type byte

// The control packet types.
const (
	CONNECT     Type = 1
	CONNACK     Type = 2
	PUBLISH     Type = 3
	PUBACK      Type = 4
	PUBREC      Type = 5
	PUBREL      Type = 6
	PUBCOMP     Type = 7
	SUBSCRIBE   Type = 8
	SUBACK      Type = 9
	UNSUBSCRIBE Type = 10
	UNSUBACK    Type = 11
	PINGREQ     Type = 12
	PINGRESP    Type = 13
	DISCONNECT  Type = 14
	AUTH        Type = 15
)

var typeNames = [...]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
	"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}

// String returns the packet type's name as the specifications write it, e.g. "PUBLISH".
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// Packet is one MQTT control packet.
type Packet interface {
	// Type returns the control packet type.
	Type() Type
	// Append appends the whole packet (fixed header included) encoded for v. It validates
	// everything the spec demands of the sender and returns *Error on a violation; dst is then
	// returned unchanged.
	Append(dst []byte, v Version) ([]byte, error)
}

// Will is the will message of a CONNECT.
type Will struct {
	Topic   string
	Payload []byte
	QoS     QoS
	Retain  bool
	Props   Properties // will properties (MQTT 5 only)
}

// Connect is the CONNECT packet, the first packet a client sends.
type Connect struct {
	ProtocolName string  // zero: "MQTT"
	Version      Version // the protocol level sent; Append's v must equal it (or it is zero)
	CleanStart   bool    // Clean Session in 3.1.1
	KeepAlive    uint16  // seconds; 0 turns keepalive off
	ClientID     string
	Username     string
	HasUsername  bool
	Password     []byte
	HasPassword  bool
	Will         *Will // nil: no will
	Props        Properties
}

// Connack is the CONNACK packet. In 3.1.1, ReasonCode carries the connect return code (0..5).
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode
	Props          Properties
}

// Publish is the PUBLISH packet. PacketID is used only when QoS > 0.
type Publish struct {
	Dup      bool
	QoS      QoS
	Retain   bool
	Topic    string
	PacketID uint16
	Payload  []byte
	Props    Properties
}

// Puback is the PUBACK packet (QoS 1 acknowledgement).
type Puback struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Props      Properties
}

// Pubrec is the PUBREC packet (QoS 2, step 1).
type Pubrec struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Props      Properties
}

// Pubrel is the PUBREL packet (QoS 2, step 2).
type Pubrel struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Props      Properties
}

// Pubcomp is the PUBCOMP packet (QoS 2, step 3).
type Pubcomp struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Props      Properties
}

// Subscription is one topic filter of a SUBSCRIBE with its options. NoLocal, RetainAsPublished
// and RetainHandling are MQTT 5 only and must be zero for 3.1.1.
type Subscription struct {
	Filter            string
	QoS               QoS
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte // 0: send retained on subscribe; 1: only if new; 2: never
}

// Subscribe is the SUBSCRIBE packet.
type Subscribe struct {
	PacketID      uint16
	Subscriptions []Subscription
	Props         Properties
}

// Suback is the SUBACK packet, one reason code (3.1.1: return code) per subscription.
type Suback struct {
	PacketID    uint16
	ReasonCodes []ReasonCode
	Props       Properties
}

// Unsubscribe is the UNSUBSCRIBE packet.
type Unsubscribe struct {
	PacketID uint16
	Filters  []string
	Props    Properties
}

// Unsuback is the UNSUBACK packet. ReasonCodes and Props are MQTT 5 only (none in 3.1.1).
type Unsuback struct {
	PacketID    uint16
	ReasonCodes []ReasonCode
	Props       Properties
}

// Pingreq is the PINGREQ packet.
type Pingreq struct{}

// Pingresp is the PINGRESP packet.
type Pingresp struct{}

// Disconnect is the DISCONNECT packet. ReasonCode and Props are MQTT 5 only.
type Disconnect struct {
	ReasonCode ReasonCode
	Props      Properties
}

// Auth is the AUTH packet (MQTT 5 only).
type Auth struct {
	ReasonCode ReasonCode
	Props      Properties
}

func (*Connect) Type() Type     { return CONNECT }
func (*Connack) Type() Type     { return CONNACK }
func (*Publish) Type() Type     { return PUBLISH }
func (*Puback) Type() Type      { return PUBACK }
func (*Pubrec) Type() Type      { return PUBREC }
func (*Pubrel) Type() Type      { return PUBREL }
func (*Pubcomp) Type() Type     { return PUBCOMP }
func (*Subscribe) Type() Type   { return SUBSCRIBE }
func (*Suback) Type() Type      { return SUBACK }
func (*Unsubscribe) Type() Type { return UNSUBSCRIBE }
func (*Unsuback) Type() Type    { return UNSUBACK }
func (*Pingreq) Type() Type     { return PINGREQ }
func (*Pingresp) Type() Type    { return PINGRESP }
func (*Disconnect) Type() Type  { return DISCONNECT }
func (*Auth) Type() Type        { return AUTH }
