package diagnose

// Cause identifiers that are not TLS handshake causes (those are the Diag* constants of
// ExplainHandshake). Each is stable: scripts may rely on it. docs/diagnosis.md lists every one
// with its evidence and fix; a test keeps the two in step.
const (
	CauseFileUnreadable       = "file-unreadable"
	CauseKeyMismatch          = "key-mismatch"
	CauseKeyEncrypted         = "key-encrypted"
	CauseWrongKind            = "wrong-material"
	CausePEMInArray           = "pem-in-array"
	CauseClientCertValidity   = "client-certificate-validity"
	CauseClockImplausible     = "clock-implausible"
	CauseTLSSetup             = "tls-setup"
	CauseDNSNotFound          = "dns-not-found"
	CauseDNSFailure           = "dns-failure"
	CauseTCPRefused           = "tcp-refused"
	CauseTCPTimeout           = "tcp-timeout"
	CauseTCPUnreachable       = "tcp-unreachable"
	CausePlainMQTTPort        = "plain-mqtt-port"
	CauseTLSPort              = "tls-port"
	CauseWSPathNotFound       = "websocket-path-not-found"
	CauseWSRefused            = "websocket-refused"
	CauseWSNotUpgraded        = "websocket-not-upgraded"
	CauseWSNotHTTP            = "websocket-not-http"
	CauseConnackRefused       = "connack-refused"
	CauseMQTTVersion          = "mqtt-version-unsupported"
	CauseClosedAfterConnect   = "closed-after-connect"
	CauseConnackTimeout       = "connack-timeout"
	CauseNotMQTT              = "not-mqtt"
	CauseSessionTakenOver     = "session-taken-over"
	CauseSubscribeRefused     = "subscribe-refused"
	CausePublishRefused       = "publish-refused"
	CauseClosedAfterPublish   = "closed-after-publish"
	CauseClosedAfterSubscribe = "closed-after-subscribe"
	CauseNoEcho               = "no-echo"
	CauseDisconnected         = "disconnected"
	CauseCanceled             = "canceled"
	CauseUnknown              = "unknown"
)

// Causes lists every cause identifier Explain and Run can return, TLS ones included.
func Causes() []string {
	return []string{
		CauseFileUnreadable, CauseKeyMismatch, CauseKeyEncrypted, CauseWrongKind, CausePEMInArray,
		CauseClientCertValidity, CauseClockImplausible, CauseTLSSetup,
		CauseDNSNotFound, CauseDNSFailure,
		CauseTCPRefused, CauseTCPTimeout, CauseTCPUnreachable,
		DiagUnknownAuthority, DiagHostname, DiagExpired, DiagBadServerCert, DiagPin, DiagVersion,
		DiagClientCertMissing, DiagClientCertRejected, DiagClosedAfterHandshake, DiagEOFDuringHandshake,
		DiagNotTLS, DiagHandshakeFailure, DiagNoApplicationProtocol, DiagUnrecognizedName,
		CausePlainMQTTPort, CauseTLSPort,
		CauseWSPathNotFound, CauseWSRefused, CauseWSNotUpgraded, CauseWSNotHTTP,
		CauseConnackRefused, CauseMQTTVersion, CauseClosedAfterConnect, CauseConnackTimeout, CauseNotMQTT,
		CauseSessionTakenOver, CauseSubscribeRefused, CausePublishRefused, CauseClosedAfterPublish,
		CauseClosedAfterSubscribe, CauseNoEcho, CauseDisconnected, CauseCanceled, CauseUnknown,
	}
}
