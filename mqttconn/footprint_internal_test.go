package mqttconn

import (
	"net"
	"testing"
	"unsafe"
)

// TestConnFootprint holds the connection struct to its 512-byte size class: an idle
// connection keeps it, so each field costs every connection of a gateway.
func TestConnFootprint(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 512 {
		t.Errorf("Conn is %d bytes, over its 512-byte budget", n)
	}
}

// TestDoneMadeOnFirstUse: a connection keeps no Done channel until Done is called (an idle
// connection nobody waits on pays for none); Done asked before Close is closed by it, Done
// asked after it is closed already, and every call returns the same channel.
func TestDoneMadeOnFirstUse(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := &Conn{nc: a}
	early := c.Done()
	if c.Done() != early {
		t.Fatal("Done returns a new channel on each call")
	}
	select {
	case <-early:
		t.Fatal("Done closed while open")
	default:
	}
	c.Close(nil)
	select {
	case <-early:
	default:
		t.Fatal("Done asked before Close not closed by it")
	}

	a2, b2 := net.Pipe()
	defer b2.Close()
	c2 := &Conn{nc: a2}
	c2.Close(nil)
	if c2.done != nil {
		t.Fatal("Close made a Done channel nobody asked for")
	}
	select {
	case <-c2.Done():
	default:
		t.Fatal("Done asked after Close is not closed")
	}
	if first := c2.Done(); c2.Done() != first {
		t.Fatal("Done returns a new channel after Close")
	}
}
