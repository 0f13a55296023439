package mqttconn

import (
	"crypto/tls"
	"net"
	"syscall"
)

// quickAck sets TCP_QUICKACK so the broker's reply to CONNECT is acknowledged at once: without
// it, Nagle on the broker meets delayed ACK here and each TLS connect stalls for ~40 ms.
func quickAck(nc net.Conn) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	tcp, ok := nc.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return
	}
	raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
