package broker

import "github.com/mochi-mqtt/server/v2/packets"

// Message Expiry Interval of messages published without one.
//
// mochi (v2.7.9) gives every message the expiry of its Capabilities.MaximumMessageExpiryInterval
// (24 h) when the publisher set none, and writes the time left as a Message Expiry Interval
// into each MQTT 5 delivery: the receiver sees an expiry the publisher never asked for (the
// server sends the time left only for a message that has an expiry [MQTT-3.3.2-6]). Setting
// the maximum to zero is no cure: mochi also stamps acknowledgements with that maximum, and its clean-up would then drop
// QoS 2 exchanges in flight.
//
// The broker marks a PUBLISH that arrives without the property as it is read, in a field of
// mochi's packet that mochi copies with the message (into each delivery, each stored copy and
// the retained message) and never reads or encodes for a PUBLISH: Connect.Keepalive. When such
// a message is encoded for a client, the interval mochi computed is removed. mochi keeps its
// 24-hour limit on storing the message. Messages mochi makes itself (wills, $SYS) carry no
// mark and keep mochi's stamp.

// noExpiryMark is the value of Connect.Keepalive on a PUBLISH whose publisher set no Message
// Expiry Interval.
const noExpiryMark = 0xFE0E

func markNoExpiry(pk *packets.Packet) {
	if pk.FixedHeader.Type == packets.Publish && pk.Properties.MessageExpiryInterval == 0 {
		pk.Connect.Keepalive = noExpiryMark
	}
}

func stripStampedExpiry(pk *packets.Packet) {
	if pk.FixedHeader.Type == packets.Publish && pk.Connect.Keepalive == noExpiryMark {
		pk.Properties.MessageExpiryInterval = 0
	}
}
