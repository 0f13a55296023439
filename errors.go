// Errors: the typed errors the client returns, and which of them retrying can fix.

package fennec

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/fennec-mqtt/fennec/mqttconn"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/session"
)

// Errors. Every message starts with "fennec: ".
var (
	// ErrClosed: the client was closed by Disconnect or Close (or, below the client, its
	// connection was closed: the two layers share one sentinel).
	ErrClosed = mqttconn.ErrClosed
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
	// ErrDeliveryUnknown: the broker acknowledged a QoS 2 message (PUBREC) and then lost the
	// session before the handshake ended (PUBCOMP): whether it reached subscribers cannot be
	// known. A broker that forwards QoS 2 messages on PUBREL, as mosquitto does, has dropped it;
	// one that forwards on PUBLISH has delivered it, so sending it again could deliver it twice.
	// The client reports it rather than guess.
	ErrDeliveryUnknown = session.ErrDeliveryUnknown
	// ErrMessageExpired: the message's Message Expiry Interval ran out while it waited in the
	// client's queue, before it was first sent; it was not sent.
	ErrMessageExpired = errors.New("fennec: message expired in the queue before it was sent")
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

// Authenticator is an MQTT 5 enhanced authentication method (Config.Authenticator).
type Authenticator = mqttconn.Authenticator

// ProtocolError reports what a misbehaving broker did (malformed packet, unknown packet ID,
// second CONNACK, …).
type ProtocolError = mqttconn.ProtocolError

// Temporary reports whether retrying the same operation later may succeed without changing
// anything: the network failed or timed out, the connection was lost, the broker said it is
// unavailable, busy, shutting down or over a quota or rate, or the offline queue was full.
// Refusals for credentials, authorization, protocol version or client ID, TLS verification
// failures, protocol violations, invalid arguments and unknown errors are not temporary.
func Temporary(err error) bool {
	if err == nil || errors.Is(err, ErrClosed) {
		return false
	}
	var re *ReasonError
	if errors.As(err, &re) {
		if re.Version == packet.V311 && re.Packet == packet.CONNACK {
			return re.Code == 3 // Server unavailable
		}
		switch re.Code {
		case 0x88, 0x89, 0x8B, 0x8D, 0x8E, 0x97, 0x98, 0x9F: // unavailable, busy, shutting down,
			// keep alive timeout, session taken over, quota, administrative action, rate
			return true
		}
		return false
	}
	var ce *ConnectError
	if errors.As(err, &ce) && ce.Phase == PhaseTLS && !isNetErr(ce.Err) {
		return false // verification, version or certificate: the same attempt fails again
	}
	if errors.Is(err, ErrProtocolViolation) || errors.Is(err, ErrPacketTooLarge) {
		return false
	}
	if errors.Is(err, ErrConnectionLost) || errors.Is(err, ErrKeepAliveTimeout) ||
		errors.Is(err, ErrWriteTimeout) || errors.Is(err, ErrQueueFull) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || isNetErr(err) {
		return true
	}
	return false
}

func isNetErr(err error) bool {
	var ne net.Error // *net.OpError and *net.DNSError among them
	return errors.As(err, &ne) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// Permanent reports whether err is a refusal of the connection that retrying cannot fix: the
// broker's CONNACK said the protocol version is unsupported, the client identifier is not
// valid, the credentials are bad, the client is not authorized or banned, the authentication
// method is bad, or the will or packet size is unacceptable. The command-line tools end with
// the refusal's exit code; the client keeps trying, at the maximum backoff.
func Permanent(err error) bool {
	var re *ReasonError
	if !errors.As(err, &re) || re.Packet != packet.CONNACK {
		return false
	}
	if re.Version == packet.V311 {
		switch re.Code {
		case 1, 2, 4, 5: // protocol version, identifier rejected, bad credentials, not authorized
			return true
		}
		return false
	}
	switch re.Code {
	case 0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C, 0x90, 0x95, 0x99, 0x9A, 0x9B:
		return true
	}
	return false
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
