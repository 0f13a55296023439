package broker_test

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
)

func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestFaultRefuseConnections(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	b.Faults().RefuseConnections(2)
	for i := 0; i < 2; i++ {
		c := dialTCP(t, b.TCPAddr)
		c.Write(connect311("r", 60))
		expectClosed(t, c)
	}
	c := dialTCP(t, b.TCPAddr)
	if ack := connectRaw(t, c, connect311("r", 60)); ack[3] != 0 {
		t.Fatalf("third connection refused: % x", ack)
	}
}

func TestFaultRefuseConnects(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	b.Faults().RefuseConnects(2, 0x89) // Server busy
	c5 := dialTCP(t, b.TCPAddr)
	if ack := connectRaw(t, c5, connect5("a", 60)); ack[3] != 0x89 {
		t.Fatalf("MQTT 5 CONNACK reason %#x, want 0x89", ack[3])
	}
	expectClosed(t, c5)
	c3 := dialTCP(t, b.TCPAddr)
	if ack := connectRaw(t, c3, connect311("a", 60)); ack[3] != 0x03 {
		t.Fatalf("3.1.1 CONNACK return code %#x, want 0x03 server unavailable", ack[3])
	}
	ok := dialTCP(t, b.TCPAddr)
	if ack := connectRaw(t, ok, connect311("a", 60)); ack[3] != 0 {
		t.Fatalf("third CONNECT refused: % x", ack)
	}
}

func TestFaultDropClient(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	c := dialTCP(t, b.TCPAddr)
	connectRaw(t, c, connect5("victim", 60))
	if err := b.Faults().DropClient("victim"); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c) // no DISCONNECT: the connection just ends
	if err := b.Faults().DropClient("nobody"); !errors.Is(err, broker.ErrNoClient) {
		t.Fatalf("DropClient of an unknown client: %v", err)
	}
}

func TestFaultStopReading(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	c := dialTCP(t, b.TCPAddr)
	connectRaw(t, c, connect311("slow", 60))
	if err := b.Faults().StopReading("slow"); err != nil {
		t.Fatal(err)
	}
	received := atomic.LoadInt64(&b.Server().Info.PacketsReceived)
	c.Write([]byte{0xC0, 0x00}) // PINGREQ
	// Once the broker's reader is parked, the PINGREQ cannot have reached mochi: it is in the
	// socket or held by the parked read.
	waitFor(t, "the broker's reader to park", func() bool { return b.Faults().ReadParked("slow") })
	if n := atomic.LoadInt64(&b.Server().Info.PacketsReceived); n != received {
		t.Fatalf("broker read %d packets while not reading", n-received)
	}
	if err := b.Faults().ResumeReading("slow"); err != nil {
		t.Fatal(err)
	}
	if p, err := readPacket(c); err != nil || p.kind() != 13 {
		t.Fatalf("want PINGRESP after resuming, got %v %v", p, err)
	}
}

// An acknowledgement is held while the delay lasts and released when the delay is lifted.
func TestFaultDelayAcks(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	b.Faults().DelayAcks(time.Hour)
	c := dialTCP(t, b.TCPAddr)
	connectRaw(t, c, connect311("p", 60)) // CONNACK is not delayed
	c.Write(publish(false, "t", 1, 1, []byte("m")))
	waitFor(t, "the PUBACK to be held", func() bool { return b.Faults().AcksHeld() == 1 })
	b.Faults().DelayAcks(0)
	if p, err := readPacket(c); err != nil || p.kind() != 4 {
		t.Fatalf("want PUBACK once the delay is lifted, got %v %v", p, err)
	}
	if n := b.Faults().AcksHeld(); n != 0 {
		t.Fatalf("%d acknowledgements still held", n)
	}
}

// A short delay ends by itself.
func TestFaultDelayAcksExpires(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	b.Faults().DelayAcks(20 * time.Millisecond)
	c := dialTCP(t, b.TCPAddr)
	connectRaw(t, c, connect311("p", 60))
	c.Write(subscribe(false, 1, "t", 1))
	if p, err := readPacket(c); err != nil || p.kind() != 9 {
		t.Fatalf("want SUBACK after the delay, got %v %v", p, err)
	}
}
