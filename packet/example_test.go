package packet_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/fennec-mqtt/fennec/packet"
)

func ExamplePublish_Append() {
	var buf []byte // reuse across calls: encoding then allocates nothing
	p := &packet.Publish{Topic: "sensors/1/temp", QoS: packet.QoS1, PacketID: 7, Payload: []byte("21.5")}
	buf, err := p.Append(buf[:0], packet.V311)
	fmt.Printf("% x %v\n", buf, err)
	// Output: 32 16 00 0e 73 65 6e 73 6f 72 73 2f 31 2f 74 65 6d 70 00 07 32 31 2e 35 <nil>
}

func ExampleReader() {
	// A stream holding two packets, as a connection would deliver them.
	var stream bytes.Buffer
	w := packet.NewWriter(&stream)
	_ = w.WritePacket(&packet.Publish{Topic: "a/b", Payload: []byte("hello")}, packet.V5)
	_ = w.WritePacket(&packet.Pingreq{}, packet.V5)

	r := packet.NewReader(&stream, 64<<10) // refuse packets over 64 KiB
	for {
		p, err := r.ReadPacket(packet.V5)
		if err != nil {
			break // io.EOF here
		}
		switch p := p.(type) {
		case *packet.Publish:
			fmt.Printf("%v %s %q\n", p.Type(), p.Topic, p.Payload)
		default:
			fmt.Println(p.Type())
		}
	}
	// Output:
	// PUBLISH a/b "hello"
	// PINGREQ
}

func ExampleReader_maxPacketSize() {
	// A peer announces a 268,435,455-byte PUBLISH. The reader refuses it from the header alone.
	r := packet.NewReader(bytes.NewReader([]byte{0x30, 0xff, 0xff, 0xff, 0x7f}), 1<<20)
	_, err := r.ReadPacket(packet.V5)
	fmt.Println(errors.Is(err, packet.ErrPacketTooLarge))
	fmt.Println(err)
	// Output:
	// true
	// packet: PUBLISH: packet of 268435460 bytes exceeds the maximum packet size of 1048576
}

func ExampleProperties() {
	c := &packet.Connect{ClientID: "sensor-1", CleanStart: true, KeepAlive: 30}
	c.Props.SetSessionExpiryInterval(3600)
	c.Props.SetReceiveMaximum(20)
	c.Props.AddUserProperty("site", "north")
	b, _ := c.Append(nil, packet.V5)

	d, _ := packet.Unmarshal(packet.V5, b)
	props := d.(*packet.Connect).Props
	fmt.Println(props.Has(packet.PropReceiveMaximum), props.ReceiveMaximum)
	fmt.Println(props.Has(packet.PropMaximumPacketSize))
	fmt.Println(props.UserProperties)
	// Output:
	// true 20
	// false
	// [{site north}]
}

func ExampleError() {
	// A SUBSCRIBE whose filter puts '#' in the middle breaks [MQTT-4.7.1-2].
	body := []byte{0x00, 0x0a, 0x00, 0x05, 'a', '/', '#', '/', 'b', 0x01}
	_, err := packet.Decode(packet.V311, 0x82, body)
	var pe *packet.Error
	if errors.As(err, &pe) {
		fmt.Println(pe.Rule, pe.Reason, errors.Is(err, packet.ErrMalformed))
	}
	fmt.Println(err)
	// Output:
	// [MQTT-4.7.1-2] Malformed Packet true
	// packet: SUBSCRIBE: topic filter "a/#/b": '#' must be a whole level and the last character [MQTT-4.7.1-2]
}

func ExampleConnackReturnCodeString() {
	fmt.Println(packet.ConnackReturnCodeString(packet.ConnRefusedNotAuthorized))
	fmt.Println(packet.NotAuthorized, packet.NotAuthorized.IsError())
	// Output:
	// connection refused: not authorized
	// Not authorized true
}
