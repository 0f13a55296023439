package fennec

import (
	"testing"
	"unsafe"
)

// TestClientFootprint holds the Client struct, the largest part of an idle connection's
// memory after crypto/tls, to its size class (896 bytes): it was 1,776 while it kept the
// dial options and the CONNECT properties twice (docs/benchmarks.md, "Idle memory and its
// floor"). A field that pushes it over belongs behind a pointer made on first use, as the
// request and topic-alias state are.
func TestClientFootprint(t *testing.T) {
	if n := unsafe.Sizeof(Client{}); n > 896 {
		t.Errorf("Client is %d bytes, over its 896-byte budget", n)
	}
	if n := unsafe.Sizeof(Config{}); n > 352 {
		t.Errorf("Config is %d bytes, over its 352-byte budget (it is kept by every client)", n)
	}
}
