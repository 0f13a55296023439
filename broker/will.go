package broker

import (
	"encoding/json"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fennec-mqtt/fennec/packet"
)

// Will properties.
//
// mochi (v2.7.9) keeps only the user properties of a will: the Payload Format Indicator,
// Message Expiry Interval, Content Type, Response Topic and Correlation Data a client set in
// its CONNECT are dropped, and the will goes out with mochi's 24-hour expiry stamped on it. The
// broker reads those properties itself from the CONNECT (which it decodes with the Fennec codec
// before mochi sees it) and, in OnWill, carries them inside the will as one user property of
// its own (willPropsKey), which mochi copies with the message into every delivery, every stored
// copy and the retained message. When such a message is encoded for a client (OnPacketEncode)
// the user property is removed and the properties are put back; the Message Expiry Interval is
// the will's own, counted down from when the will was published [MQTT-3.3.2-6], or none. Every
// will carries it, of both versions, so that none arrives with mochi's stamp.

// willPropsKey names the broker's own user property; a client cannot send it (it begins with
// a NUL byte, which the codec refuses in a UTF-8 string [MQTT-1.5.4-2]).
const willPropsKey = "\x00fennec-will"

// willProps is what mochi drops of a will's properties.
type willProps struct {
	PayloadFormat *byte  `json:"pfi,omitempty"`
	Expiry        uint32 `json:"mei,omitempty"`
	ContentType   string `json:"ct,omitempty"`
	ResponseTopic string `json:"rt,omitempty"`
	Correlation   []byte `json:"cd,omitempty"`
}

// willPropsOf returns the encoded properties mochi would drop of a will ("{}" for none, which
// still tells the encoder to remove mochi's stamped expiry), or "" without a will.
func willPropsOf(w *packet.Will) string {
	if w == nil {
		return ""
	}
	var wp willProps
	if w.Props.Has(packet.PropPayloadFormat) {
		v := w.Props.PayloadFormat
		wp.PayloadFormat = &v
	}
	wp.Expiry = w.Props.MessageExpiryInterval
	wp.ContentType = w.Props.ContentType
	wp.ResponseTopic = w.Props.ResponseTopic
	wp.Correlation = w.Props.CorrelationData
	b, _ := json.Marshal(wp)
	return string(b)
}

// carryWillProps adds the connection's will properties to the will mochi is about to publish.
func carryWillProps(cl *mqtt.Client, will mqtt.Will) mqtt.Will {
	c := connOf(cl)
	if c == nil || c.willProps == "" {
		return will
	}
	will.User = append(append([]packets.UserProperty(nil), will.User...), packets.UserProperty{Key: willPropsKey, Val: c.willProps})
	return will
}

// restoreWillProps puts a will's properties back into the PUBLISH encoded for a client.
func restoreWillProps(cl *mqtt.Client, pk *packets.Packet) {
	if pk.FixedHeader.Type != packets.Publish || len(pk.Properties.User) == 0 {
		return
	}
	last := pk.Properties.User[len(pk.Properties.User)-1]
	if last.Key != willPropsKey {
		return
	}
	pk.Properties.User = pk.Properties.User[: len(pk.Properties.User)-1 : len(pk.Properties.User)-1]
	if len(pk.Properties.User) == 0 {
		pk.Properties.User = nil
	}
	var wp willProps
	if json.Unmarshal([]byte(last.Val), &wp) != nil {
		return
	}
	if wp.PayloadFormat != nil {
		pk.Properties.PayloadFormat = *wp.PayloadFormat
		pk.Properties.PayloadFormatFlag = true
	}
	pk.Properties.ContentType = wp.ContentType
	pk.Properties.ResponseTopic = wp.ResponseTopic
	pk.Properties.CorrelationData = wp.Correlation
	pk.Properties.MessageExpiryInterval = 0 // mochi's stamp, not the will's
	if wp.Expiry > 0 {
		left := int64(wp.Expiry) - (time.Now().Unix() - pk.Created)
		pk.Properties.MessageExpiryInterval = uint32(max(left, 1))
	}
}
