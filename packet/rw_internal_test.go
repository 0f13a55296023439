package packet

import (
	"bytes"
	"io"
	"net"
	"testing"
)

// TestWriterTCPDoesNotCopyPayload writes a 1 MiB PUBLISH on a loopback TCP connection: the
// Writer's own buffer holds only the header (the payload goes out through writev), and the peer
// receives the exact packet.
func TestWriterTCPDoesNotCopyPayload(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	received := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			received <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		received <- b
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(c)
	if !w.vector {
		t.Fatal("Writer does not use vectored writes on *net.TCPConn")
	}
	p := &Publish{Topic: "bulk", QoS: 1, PacketID: 1, Payload: bytes.Repeat([]byte{7}, 1<<20)}
	if err := w.WritePacket(p, V5); err != nil {
		t.Fatal(err)
	}
	if cap(w.buf) > 4096 {
		t.Errorf("Writer buffer grew to %d bytes: the payload was copied", cap(w.buf))
	}
	if w.bufs[1] != nil {
		t.Error("Writer keeps a reference to the payload")
	}
	c.Close()
	want, _ := p.Append(nil, V5)
	if got := <-received; !bytes.Equal(got, want) {
		t.Errorf("peer received %d bytes, want the %d-byte packet", len(got), len(want))
	}
}
