package cmdutil

import (
	"fmt"
	"strings"

	"github.com/fennec-mqtt/fennec/packet"
)

// describePacket renders one packet as a single readable trace line, e.g.
//
//	PUBLISH id=3 QoS 1 topic="a/b" payload "hi" (2 bytes)
func describePacket(p packet.Packet, v packet.Version) string {
	var b strings.Builder
	reason := func(c packet.ReasonCode) string {
		if v == packet.V311 {
			return fmt.Sprintf("0x%02X", byte(c))
		}
		return fmt.Sprintf("0x%02X %s", byte(c), c)
	}
	ack := func(name string, a packet.Puback) {
		fmt.Fprintf(&b, "%s id=%d", name, a.PacketID)
		ackReason(&b, v, a.ReasonCode, &a.Props, reason)
	}
	switch p := p.(type) {
	case *packet.Connect:
		fmt.Fprintf(&b, "CONNECT MQTT %s client-id=%q keepalive=%ds", versionLabel(p.Version, v), p.ClientID, p.KeepAlive)
		if p.CleanStart {
			if v == packet.V311 {
				b.WriteString(" clean-session")
			} else {
				b.WriteString(" clean-start")
			}
		}
		if p.HasUsername {
			fmt.Fprintf(&b, " username=%q", p.Username)
		}
		if p.HasPassword {
			b.WriteString(" password=(not shown)") // not even its length
		}
		if p.Will != nil {
			fmt.Fprintf(&b, " will={topic=%q QoS %d retain=%v %d bytes%s}", p.Will.Topic, p.Will.QoS, p.Will.Retain, len(p.Will.Payload), propsString(&p.Will.Props))
		}
		b.WriteString(propsString(&p.Props))
	case *packet.Connack:
		fmt.Fprintf(&b, "CONNACK session-present=%v ", p.SessionPresent)
		if v == packet.V311 {
			fmt.Fprintf(&b, "return-code=%d (%s)", byte(p.ReasonCode), packet.ConnackReturnCodeString(p.ReasonCode))
		} else {
			b.WriteString("reason=" + reason(p.ReasonCode))
		}
		b.WriteString(propsString(&p.Props))
	case *packet.Publish:
		b.WriteString("PUBLISH")
		if p.QoS > 0 {
			fmt.Fprintf(&b, " id=%d", p.PacketID)
		}
		fmt.Fprintf(&b, " QoS %d", p.QoS)
		if p.Retain {
			b.WriteString(" retain")
		}
		if p.Dup {
			b.WriteString(" dup")
		}
		fmt.Fprintf(&b, " topic=%q payload %s (%d bytes)", p.Topic, payloadPreview(p.Payload), len(p.Payload))
		b.WriteString(propsString(&p.Props))
	// the four acknowledgements of a PUBLISH have the same fields
	case *packet.Puback:
		ack("PUBACK", *p)
	case *packet.Pubrec:
		ack("PUBREC", packet.Puback(*p))
	case *packet.Pubrel:
		ack("PUBREL", packet.Puback(*p))
	case *packet.Pubcomp:
		ack("PUBCOMP", packet.Puback(*p))
	case *packet.Subscribe:
		fmt.Fprintf(&b, "SUBSCRIBE id=%d", p.PacketID)
		for _, s := range p.Subscriptions {
			fmt.Fprintf(&b, " [%q QoS %d", s.Filter, s.QoS)
			if s.NoLocal {
				b.WriteString(" no-local")
			}
			if s.RetainAsPublished {
				b.WriteString(" retain-as-published")
			}
			if s.RetainHandling != 0 {
				fmt.Fprintf(&b, " retain-handling=%d", s.RetainHandling)
			}
			b.WriteString("]")
		}
		b.WriteString(propsString(&p.Props))
	case *packet.Suback:
		fmt.Fprintf(&b, "SUBACK id=%d", p.PacketID)
		for _, c := range p.ReasonCodes {
			if c < 0x80 {
				fmt.Fprintf(&b, " [granted QoS %d]", byte(c))
			} else {
				fmt.Fprintf(&b, " [refused %s]", subackReason(byte(c)))
			}
		}
		b.WriteString(propsString(&p.Props))
	case *packet.Unsubscribe:
		fmt.Fprintf(&b, "UNSUBSCRIBE id=%d %q", p.PacketID, p.Filters)
		b.WriteString(propsString(&p.Props))
	case *packet.Unsuback:
		fmt.Fprintf(&b, "UNSUBACK id=%d", p.PacketID)
		for _, c := range p.ReasonCodes {
			b.WriteString(" [" + reason(c) + "]")
		}
		b.WriteString(propsString(&p.Props))
	case *packet.Pingreq:
		b.WriteString("PINGREQ")
	case *packet.Pingresp:
		b.WriteString("PINGRESP")
	case *packet.Disconnect:
		b.WriteString("DISCONNECT")
		if v != packet.V311 {
			b.WriteString(" reason=" + reason(p.ReasonCode))
			b.WriteString(propsString(&p.Props))
		}
	case *packet.Auth:
		b.WriteString("AUTH reason=" + reason(p.ReasonCode))
		b.WriteString(propsString(&p.Props))
	case nil:
		b.WriteString("(no packet)")
	case *packet.OversizePublish:
		fmt.Fprintf(&b, "PUBLISH id=%d QoS %d of %d bytes, over the maximum packet size %d: skipped, not delivered", p.PacketID, p.QoS, p.Size, p.Max)
	default:
		fmt.Fprintf(&b, "%v %+v", p.Type(), p)
	}
	return b.String()
}

func ackReason(b *strings.Builder, v packet.Version, c packet.ReasonCode, props *packet.Properties, reason func(packet.ReasonCode) string) {
	if v != packet.V311 && (c != 0 || !props.Empty()) {
		b.WriteString(" reason=" + reason(c))
		b.WriteString(propsString(props))
	}
}

func versionLabel(pv, v packet.Version) string {
	if pv == 0 {
		pv = v
	}
	if pv == packet.V311 {
		return "3.1.1"
	}
	return "5.0"
}

// propsString lists the properties present, as " {Name=value, ...}", or "" when there are none.
func propsString(p *packet.Properties) string {
	if p == nil || p.Empty() {
		return ""
	}
	var parts []string
	add := func(id packet.PropertyID, v any) {
		if p.Has(id) {
			parts = append(parts, fmt.Sprintf("%s=%v", id, v))
		}
	}
	add(packet.PropPayloadFormat, p.PayloadFormat)
	add(packet.PropMessageExpiry, p.MessageExpiryInterval)
	add(packet.PropContentType, fmt.Sprintf("%q", p.ContentType))
	add(packet.PropResponseTopic, fmt.Sprintf("%q", p.ResponseTopic))
	add(packet.PropCorrelationData, payloadPreview(p.CorrelationData))
	if len(p.SubscriptionIdentifiers) > 0 {
		parts = append(parts, fmt.Sprintf("%s=%v", packet.PropSubscriptionIdentifier, p.SubscriptionIdentifiers))
	}
	add(packet.PropSessionExpiry, p.SessionExpiryInterval)
	add(packet.PropAssignedClientIdentifier, fmt.Sprintf("%q", p.AssignedClientIdentifier))
	add(packet.PropServerKeepAlive, p.ServerKeepAlive)
	add(packet.PropAuthenticationMethod, fmt.Sprintf("%q", p.AuthenticationMethod))
	add(packet.PropAuthenticationData, fmt.Sprintf("(%d bytes)", len(p.AuthenticationData)))
	add(packet.PropRequestProblemInformation, p.RequestProblemInformation)
	add(packet.PropWillDelay, p.WillDelayInterval)
	add(packet.PropRequestResponseInformation, p.RequestResponseInformation)
	add(packet.PropResponseInformation, fmt.Sprintf("%q", p.ResponseInformation))
	add(packet.PropServerReference, fmt.Sprintf("%q", p.ServerReference))
	add(packet.PropReasonString, fmt.Sprintf("%q", p.ReasonString))
	add(packet.PropReceiveMaximum, p.ReceiveMaximum)
	add(packet.PropTopicAliasMaximum, p.TopicAliasMaximum)
	add(packet.PropTopicAlias, p.TopicAlias)
	add(packet.PropMaximumQoS, p.MaximumQoS)
	add(packet.PropRetainAvailable, p.RetainAvailable)
	for _, u := range p.UserProperties {
		parts = append(parts, fmt.Sprintf("User Property=%q:%q", u.Key, u.Value))
	}
	add(packet.PropMaximumPacketSize, p.MaximumPacketSize)
	add(packet.PropWildcardSubscriptionAvailable, p.WildcardSubscriptionAvailable)
	add(packet.PropSubscriptionIdentifiersAvailable, p.SubscriptionIdentifiersAvailable)
	add(packet.PropSharedSubscriptionAvailable, p.SharedSubscriptionAvailable)
	if len(parts) == 0 {
		return ""
	}
	return " {" + strings.Join(parts, ", ") + "}"
}

func subackReason(code byte) string {
	switch code {
	case 0x80:
		return "0x80 unspecified error / failure"
	case 0x83:
		return "0x83 implementation specific error"
	case 0x87:
		return "0x87 not authorized"
	case 0x8F:
		return "0x8F topic filter invalid"
	case 0x91:
		return "0x91 packet identifier in use"
	case 0x97:
		return "0x97 quota exceeded"
	case 0x9E:
		return "0x9E shared subscriptions not supported"
	case 0xA1:
		return "0xA1 subscription identifiers not supported"
	case 0xA2:
		return "0xA2 wildcard subscriptions not supported"
	}
	return fmt.Sprintf("0x%02X", code)
}
