package session_test

import (
	"fmt"

	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/session"
)

// Packet identifiers: handed out in turn, never one still in use, and a freed one comes back
// only after the others.
func ExampleIDs() {
	var ids session.IDs
	a, _ := ids.Take()
	b, _ := ids.Take()
	ids.Free(a)
	c, _ := ids.Take()
	fmt.Println(a, b, c, "in use:", ids.Len())
	// Output: 1 2 3 in use: 2
}

// A PUBLISH as the bytes a Store keeps in a Record, and back.
func ExampleMarshalPublish() {
	b, err := session.MarshalPublish(&packet.Publish{Topic: "sensors/t1", QoS: 1, PacketID: 7, Payload: []byte("21.5")})
	if err != nil {
		panic(err)
	}
	p, err := session.UnmarshalPublish(b)
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Topic, p.QoS, p.PacketID, string(p.Payload))
	// Output: sensors/t1 QoS 1 7 21.5
}
