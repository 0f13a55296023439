package broker_test

import (
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
)

// heapInUse returns the process's heap in use after a collection.
func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestClaimedConnectCostsNothing: ten connections each send the start of a CONNECT that claims
// 20 MB and stay open. The broker refuses each as soon as the length is read (MaxConnectSize):
// the heap stays where it was. The old broker allocated every claimed length (10 × 20 MB here;
// ten claims of 200 MB took it to 1.95 GB).
func TestClaimedConnectCostsNothing(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	before := heapInUse()
	var conns []net.Conn
	for range 10 {
		c, err := net.Dial("tcp", b.TCPAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
		if _, err := c.Write(packet.AppendVarInt([]byte{0x10}, 20<<20)); err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{0x00, 0x04, 'M', 'Q', 'T', 'T'})
	}
	time.Sleep(300 * time.Millisecond) // the broker reads what was sent
	after := heapInUse()
	t.Logf("heap in use: %.1f MiB before, %.1f MiB with ten 20 MB CONNECT claims", float64(before)/(1<<20), float64(after)/(1<<20))
	if after > before+16<<20 {
		t.Fatalf("heap grew by %.1f MiB for ten CONNECTs that sent 11 bytes each", float64(after-before)/(1<<20))
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("the broker answered a CONNECT over MaxConnectSize instead of closing")
		}
	}
}

// TestMaxPacketSize: the MQTT 5 CONNACK announces the broker's Maximum Packet Size (1 MiB by
// default), and a client that then claims more is disconnected before its bytes are read, so
// ten such clients cost no memory either.
func TestMaxPacketSize(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	c, err := net.Dial("tcp", b.TCPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ack := connectRaw(t, c, connect5("big", 30))
	ca, err := packet.Decode(packet.V5, ack[0], ack[2:])
	if err != nil {
		t.Fatal(err)
	}
	props := ca.(*packet.Connack).Props
	if !props.Has(packet.PropMaximumPacketSize) || props.MaximumPacketSize != broker.DefaultMaxPacketSize {
		t.Fatalf("CONNACK Maximum Packet Size %v (set %v), want %d", props.MaximumPacketSize, props.Has(packet.PropMaximumPacketSize), broker.DefaultMaxPacketSize)
	}
	before := heapInUse()
	var conns []net.Conn
	for i := range 10 {
		c, err := net.Dial("tcp", b.TCPAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
		connectRaw(t, c, connect5("big"+string(rune('a'+i)), 30))
		c.Write(packet.AppendVarInt([]byte{0x30}, 20<<20)) // PUBLISH claiming 20 MB
	}
	time.Sleep(300 * time.Millisecond)
	after := heapInUse()
	t.Logf("heap in use: %.1f MiB before, %.1f MiB with ten 20 MB PUBLISH claims", float64(before)/(1<<20), float64(after)/(1<<20))
	if after > before+16<<20 {
		t.Fatalf("heap grew by %.1f MiB", float64(after-before)/(1<<20))
	}
	for _, c := range conns {
		p, err := readPacket(c)
		if err == nil && (p.kind() != 14 || len(p.body) == 0 || p.body[0] != 0x95) {
			t.Fatalf("after an oversized PUBLISH: packet type %d body %x, want DISCONNECT 0x95 or a close", p.kind(), p.body)
		}
	}
}
