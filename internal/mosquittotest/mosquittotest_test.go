package mosquittotest_test

import (
	"net"
	"testing"

	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
)

func TestStartAcceptsConnections(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.Options{})
	c, err := net.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A CONNECT for MQTT 3.1.1, clean session, client ID "t": mosquitto must answer CONNACK 0.
	if _, err := c.Write([]byte{0x10, 0x0d, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 't'}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x20, 0x02, 0x00, 0x00}; string(buf) != string(want) {
		t.Fatalf("CONNACK = % x, want % x", buf, want)
	}
}
