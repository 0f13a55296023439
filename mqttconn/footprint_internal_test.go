package mqttconn

import (
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
