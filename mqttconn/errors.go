package mqttconn

import (
	"errors"
	"fmt"
	"strings"

	"github.com/fennec-mqtt/fennec/packet"
)

// Phase names the step of establishing a connection that failed.
type Phase string

// The phases of a connection attempt, in order.
const (
	PhaseDNS       Phase = "dns"       // resolving the broker's host name
	PhaseTCP       Phase = "tcp"       // opening the TCP connection
	PhaseTLS       Phase = "tls"       // the TLS handshake
	PhaseWebSocket Phase = "websocket" // the WebSocket upgrade (ws:// and wss://)
	PhaseMQTT      Phase = "mqtt"      // CONNECT / CONNACK
)

// ConnectError reports a failed connection attempt: the address, the phase that failed and why.
// Err may be a *ReasonError (the broker refused the CONNECT), a *ProtocolError, a
// *net.OpError, a TLS verification error, context.DeadlineExceeded, …
type ConnectError struct {
	Addr  string
	Phase Phase
	Err   error
}

func (e *ConnectError) Error() string {
	msg := e.Err.Error()
	msg = strings.TrimPrefix(msg, "fennec: ")
	return fmt.Sprintf("fennec: connect %s: %s: %s", e.Addr, e.Phase, msg)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// ReasonError is a refusal or failure the broker reported with a reason code: a CONNACK that
// refuses the connection, a SUBACK or UNSUBACK failure, a PUBACK/PUBREC error, or a DISCONNECT
// the broker sent. For MQTT 3.1.1 CONNACK, Code holds the connect return code (1..5).
type ReasonError struct {
	Packet  packet.Type       // the packet that carried the code
	Code    packet.ReasonCode // the reason code (3.1.1: return code)
	Version packet.Version    // protocol version in use, which decides Code's meaning
	Reason  string            // the MQTT 5 Reason String property, when the broker sent one
	// ServerReference is the MQTT 5 Server Reference property: the server to use instead,
	// with 0x9C Use another server and 0x9D Server moved.
	ServerReference string
}

// Meaning returns the code's meaning as the specification words it.
func (e *ReasonError) Meaning() string {
	if e.Version == packet.V311 && e.Packet == packet.CONNACK {
		return packet.ConnackReturnCodeString(e.Code)
	}
	if e.Version == packet.V311 && e.Packet == packet.SUBACK && e.Code == 0x80 {
		return "Failure"
	}
	return e.Code.String()
}

func (e *ReasonError) Error() string {
	var b strings.Builder
	b.WriteString("fennec: ")
	switch e.Packet {
	case packet.CONNACK:
		b.WriteString("broker refused the connection")
	case packet.DISCONNECT:
		b.WriteString("broker sent DISCONNECT")
	default:
		fmt.Fprintf(&b, "broker answered %v", e.Packet)
	}
	fmt.Fprintf(&b, ": %s (0x%02X)", e.Meaning(), byte(e.Code))
	if e.Reason != "" {
		fmt.Fprintf(&b, ": %q", e.Reason)
	}
	if e.ServerReference != "" {
		fmt.Fprintf(&b, " (server reference: %q)", e.ServerReference)
	}
	return b.String()
}

// ProtocolError reports a broker that broke the protocol: a malformed or oversized packet, a
// packet ID we never used, a second CONNACK, a packet a broker may not send. The connection is
// closed; the session survives.
type ProtocolError struct {
	Packet packet.Type // the offending packet's type; 0 when it could not be decoded
	Msg    string      // what the broker did, in plain words
	Err    error       // the codec error, when there is one (wraps packet.ErrMalformed …)
	// Reason is the DISCONNECT reason code sent for it under MQTT 5 (zero: Protocol Error, or
	// what Err implies).
	Reason packet.ReasonCode
}

func (e *ProtocolError) Error() string {
	s := "fennec: protocol violation by the broker: " + e.Msg
	if e.Err != nil {
		s += ": " + strings.TrimPrefix(e.Err.Error(), "packet: ")
	}
	return s
}

func (e *ProtocolError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrProtocolViolation) true.
func (e *ProtocolError) Is(target error) bool { return target == ErrProtocolViolation }

// Sentinel errors.
var (
	// ErrConnectionLost: the connection closed before the operation completed.
	ErrConnectionLost = errors.New("fennec: connection lost")
	// ErrKeepAliveTimeout: nothing arrived from the broker within 1.5 × the keep alive.
	ErrKeepAliveTimeout = errors.New("fennec: keep alive timeout: the broker stopped answering")
	// ErrWriteTimeout: the broker stopped reading; a write could not complete.
	ErrWriteTimeout = errors.New("fennec: write timeout: the broker stopped reading")
	// ErrProtocolViolation is the errors.Is target of every *ProtocolError.
	ErrProtocolViolation = errors.New("fennec: protocol violation by the broker")
	// ErrPacketTooLarge: the packet exceeds the maximum packet size the broker announced.
	ErrPacketTooLarge = errors.New("fennec: packet larger than the broker's Maximum Packet Size")
	// ErrClosed: the connection was closed by this side.
	ErrClosed = errors.New("fennec: closed")
)
