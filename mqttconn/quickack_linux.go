package mqttconn

import (
	"crypto/tls"
	"net"
	"syscall"
)

// quickAcker sets TCP_QUICKACK on a TCP socket. Linux clears the flag again on its own, so it is
// re-armed before reads while a reply is awaited (see deadlineReader): a broker that writes two
// small packets in a row (a forwarded message, then PUBACK) without TCP_NODELAY otherwise waits
// for our delayed ACK (~40 ms) before the second leaves, because of Nagle — both at CONNECT (the
// TLS connect stall) and on every request/response exchange afterwards.
type quickAcker struct{ raw syscall.RawConn }

func newQuickAcker(nc net.Conn) *quickAcker {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	tcp, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return nil
	}
	return &quickAcker{raw}
}

func (q *quickAcker) arm() {
	if q == nil {
		return
	}
	q.raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
