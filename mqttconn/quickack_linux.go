package mqttconn

import (
	"crypto/tls"
	"net"
	"syscall"
	"unsafe"
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

// sockInfo answers questions about the TCP socket under a connection.
type sockInfo struct{ raw syscall.RawConn }

// sockInfoOf shares the quick acker's raw connection (nil for a connection that is not TCP).
func sockInfoOf(q *quickAcker) sockInfo {
	if q == nil {
		return sockInfo{}
	}
	return sockInfo{q.raw}
}

// sendQueueEmpty reports whether the socket holds no unsent or unacknowledged bytes
// (SIOCOUTQ): a small write then completes without blocking.
func (s sockInfo) sendQueueEmpty() bool {
	if s.raw == nil {
		return false
	}
	n := -1
	s.raw.Control(func(fd uintptr) {
		var v int32
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&v))); e == 0 {
			n = int(v)
		}
	})
	return n == 0
}

// setRcvLowat sets SO_RCVLOWAT, the bytes that must wait in the socket before a sleeping reader
// is woken (see coalescer); it reports false when the socket does not take it.
func (s sockInfo) setRcvLowat(n int) bool {
	if s.raw == nil {
		return false
	}
	var err error
	if cerr := s.raw.Control(func(fd uintptr) {
		err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, n)
	}); cerr != nil {
		return false
	}
	return err == nil
}
