package fennec

import (
	"errors"
	"strings"

	"github.com/fennec-mqtt/fennec/mqttconn"
)

// Errors. Every message starts with "fennec: ".
var (
	// ErrClosed: the client was closed by Disconnect or Close.
	ErrClosed = errors.New("fennec: client closed")
	// ErrConnectionLost: the connection ended before the operation completed (and the
	// client does not reconnect).
	ErrConnectionLost = mqttconn.ErrConnectionLost
	// ErrQueueFull: the client is offline and MaxOfflineQueue messages already wait; the
	// message was not accepted.
	ErrQueueFull = errors.New("fennec: offline queue full: message not accepted")
	// ErrPacketTooLarge: the packet exceeds the broker's Maximum Packet Size.
	ErrPacketTooLarge = mqttconn.ErrPacketTooLarge
	// ErrKeepAliveTimeout: the broker stopped answering within 1.5 × keep alive.
	ErrKeepAliveTimeout = mqttconn.ErrKeepAliveTimeout
	// ErrWriteTimeout: the broker stopped reading.
	ErrWriteTimeout = mqttconn.ErrWriteTimeout
	// ErrProtocolViolation is the errors.Is target of errors reporting a broker that broke the
	// protocol (see *ProtocolError).
	ErrProtocolViolation = mqttconn.ErrProtocolViolation
	// ErrUnacknowledged: Disconnect or Close left QoS 1/2 messages unacknowledged; they
	// remain in the session store when it is durable.
	ErrUnacknowledged = errors.New("fennec: messages not acknowledged")
	// ErrNotConnected: the client is offline and the operation needs a connection.
	ErrNotConnected = errors.New("fennec: not connected")
	// ErrNotSupported: the broker announced in its CONNACK that it does not support what was
	// asked (a QoS above its Maximum QoS, a retained message without Retain Available), so
	// the client refused it without sending anything; the connection stays up.
	ErrNotSupported = errors.New("fennec: not supported by the broker")
)

// Phase names the step of a connection attempt that failed ("dns", "tcp", "tls",
// "websocket", "mqtt").
type Phase = mqttconn.Phase

// The phases of a connection attempt.
const (
	PhaseDNS       = mqttconn.PhaseDNS
	PhaseTCP       = mqttconn.PhaseTCP
	PhaseTLS       = mqttconn.PhaseTLS
	PhaseWebSocket = mqttconn.PhaseWebSocket
	PhaseMQTT      = mqttconn.PhaseMQTT
)

// ConnectError reports a failed connection attempt with its address and phase.
type ConnectError = mqttconn.ConnectError

// ReasonError carries a reason code the broker sent: a CONNACK refusal, a SUBACK failure,
// a PUBACK/PUBREC error, a server DISCONNECT.
type ReasonError = mqttconn.ReasonError

// ProtocolError reports what a misbehaving broker did (malformed packet, unknown packet ID,
// second CONNACK, …).
type ProtocolError = mqttconn.ProtocolError

// Temporary reports whether err is worth retrying: network failures, timeouts, broker
// unavailable or busy. CONNACK refusals for bad credentials, authorization or protocol version
// are not temporary.
func Temporary(err error) bool {
	if err == nil || errors.Is(err, ErrClosed) {
		return false
	}
	var re *ReasonError
	if errors.As(err, &re) {
		switch byte(re.Code) {
		case 0x03, 0x88, 0x89, 0x8B, 0x97, 0x9F, 0x80, 0x8D, 0x8E, 0x98:
			return true
		}
		return re.Version.String() == "3.1.1" && re.Code == 3
	}
	var ce *ConnectError
	if errors.As(err, &ce) && ce.Phase == PhaseTLS {
		return false
	}
	return true
}

// wrapErr adds context to err without stacking "fennec: " prefixes:
// "fennec: subscribe: client closed", not "fennec: subscribe: fennec: client closed".
func wrapErr(context string, err error) error { return &prefixedErr{context, err} }

type prefixedErr struct {
	context string
	err     error
}

func (e *prefixedErr) Error() string {
	return "fennec: " + e.context + ": " + strings.TrimPrefix(e.err.Error(), "fennec: ")
}

func (e *prefixedErr) Unwrap() error { return e.err }

// joinedErr is err that also matches target with errors.Is, with err's message.
type joinedErr struct{ err, target error }

func (e *joinedErr) Error() string   { return e.err.Error() }
func (e *joinedErr) Unwrap() []error { return []error{e.err, e.target} }
