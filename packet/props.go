package packet

import "strconv"

// PropertyID identifies an MQTT 5 property (MQTT 5.0 section 2.2.2.2).
type PropertyID byte

// The MQTT 5 property identifiers.
const (
	PropPayloadFormat                    PropertyID = 0x01
	PropMessageExpiry                    PropertyID = 0x02
	PropContentType                      PropertyID = 0x03
	PropResponseTopic                    PropertyID = 0x08
	PropCorrelationData                  PropertyID = 0x09
	PropSubscriptionIdentifier           PropertyID = 0x0B
	PropSessionExpiry                    PropertyID = 0x11
	PropAssignedClientIdentifier         PropertyID = 0x12
	PropServerKeepAlive                  PropertyID = 0x13
	PropAuthenticationMethod             PropertyID = 0x15
	PropAuthenticationData               PropertyID = 0x16
	PropRequestProblemInformation        PropertyID = 0x17
	PropWillDelay                        PropertyID = 0x18
	PropRequestResponseInformation       PropertyID = 0x19
	PropResponseInformation              PropertyID = 0x1A
	PropServerReference                  PropertyID = 0x1C
	PropReasonString                     PropertyID = 0x1F
	PropReceiveMaximum                   PropertyID = 0x21
	PropTopicAliasMaximum                PropertyID = 0x22
	PropTopicAlias                       PropertyID = 0x23
	PropMaximumQoS                       PropertyID = 0x24
	PropRetainAvailable                  PropertyID = 0x25
	PropUserProperty                     PropertyID = 0x26
	PropMaximumPacketSize                PropertyID = 0x27
	PropWildcardSubscriptionAvailable    PropertyID = 0x28
	PropSubscriptionIdentifiersAvailable PropertyID = 0x29
	PropSharedSubscriptionAvailable      PropertyID = 0x2A
)

// UserProperty is one User Property: a name and a value, both UTF-8 strings.
type UserProperty struct{ Key, Value string }

// Properties holds the MQTT 5 properties of one packet (or of a will). Each field is named as in
// the specification. Presence is tracked apart from the value so that an absent property differs
// from one sent with value zero: set a field and call Set, or use the setters
// (p.SetReceiveMaximum(20)). UserProperties and SubscriptionIdentifiers are present when
// non-empty. On decode, every property found is marked present.
//
// Which properties a packet may carry is enforced on encode and decode (MQTT 5.0 section
// 2.2.2.2); properties are ignored entirely for MQTT 3.1.1.
type Properties struct {
	PayloadFormat                    byte
	MessageExpiryInterval            uint32
	ContentType                      string
	ResponseTopic                    string
	CorrelationData                  []byte
	SubscriptionIdentifiers          []uint32
	SessionExpiryInterval            uint32
	AssignedClientIdentifier         string
	ServerKeepAlive                  uint16
	AuthenticationMethod             string
	AuthenticationData               []byte
	RequestProblemInformation        byte
	WillDelayInterval                uint32
	RequestResponseInformation       byte
	ResponseInformation              string
	ServerReference                  string
	ReasonString                     string
	ReceiveMaximum                   uint16
	TopicAliasMaximum                uint16
	TopicAlias                       uint16
	MaximumQoS                       byte
	RetainAvailable                  byte
	UserProperties                   []UserProperty
	MaximumPacketSize                uint32
	WildcardSubscriptionAvailable    byte
	SubscriptionIdentifiersAvailable byte
	SharedSubscriptionAvailable      byte

	present uint64 // bit id set when property id is present

	// order records the order a decoded packet carried its properties in, when it differs from
	// the canonical ascending order, so that re-encoding reproduces the received bytes.
	order  [24]PropertyID
	norder uint8
}

// Has reports whether the property is present.
func (p *Properties) Has(id PropertyID) bool {
	switch id {
	case PropUserProperty:
		return len(p.UserProperties) > 0
	case PropSubscriptionIdentifier:
		return len(p.SubscriptionIdentifiers) > 0
	}
	return id < 64 && p.present&(1<<id) != 0
}

// Set marks the property present; its value is taken from the field. Set has no effect for
// PropUserProperty and PropSubscriptionIdentifier (present when their slices are non-empty) or
// for unknown identifiers.
func (p *Properties) Set(id PropertyID) {
	if id < 64 && propKinds[id] != kNone && id != PropUserProperty && id != PropSubscriptionIdentifier {
		p.present |= 1 << id
	}
}

// Clear marks the property absent (and, for the two list properties, empties the list).
func (p *Properties) Clear(id PropertyID) {
	switch id {
	case PropUserProperty:
		p.UserProperties = nil
	case PropSubscriptionIdentifier:
		p.SubscriptionIdentifiers = nil
	default:
		if id < 64 {
			p.present &^= 1 << id
		}
	}
}

// Empty reports whether no property is present.
func (p *Properties) Empty() bool {
	return p.present == 0 && len(p.UserProperties) == 0 && len(p.SubscriptionIdentifiers) == 0
}

// Setters: each assigns the field and marks the property present.

func (p *Properties) SetPayloadFormat(v byte) { p.PayloadFormat = v; p.Set(PropPayloadFormat) }
func (p *Properties) SetMessageExpiryInterval(v uint32) {
	p.MessageExpiryInterval = v
	p.Set(PropMessageExpiry)
}
func (p *Properties) SetContentType(v string)     { p.ContentType = v; p.Set(PropContentType) }
func (p *Properties) SetResponseTopic(v string)   { p.ResponseTopic = v; p.Set(PropResponseTopic) }
func (p *Properties) SetCorrelationData(v []byte) { p.CorrelationData = v; p.Set(PropCorrelationData) }
func (p *Properties) SetSessionExpiryInterval(v uint32) {
	p.SessionExpiryInterval = v
	p.Set(PropSessionExpiry)
}
func (p *Properties) SetAssignedClientIdentifier(v string) {
	p.AssignedClientIdentifier = v
	p.Set(PropAssignedClientIdentifier)
}
func (p *Properties) SetServerKeepAlive(v uint16) { p.ServerKeepAlive = v; p.Set(PropServerKeepAlive) }
func (p *Properties) SetAuthenticationMethod(v string) {
	p.AuthenticationMethod = v
	p.Set(PropAuthenticationMethod)
}
func (p *Properties) SetAuthenticationData(v []byte) {
	p.AuthenticationData = v
	p.Set(PropAuthenticationData)
}
func (p *Properties) SetRequestProblemInformation(v byte) {
	p.RequestProblemInformation = v
	p.Set(PropRequestProblemInformation)
}
func (p *Properties) SetWillDelayInterval(v uint32) { p.WillDelayInterval = v; p.Set(PropWillDelay) }
func (p *Properties) SetRequestResponseInformation(v byte) {
	p.RequestResponseInformation = v
	p.Set(PropRequestResponseInformation)
}
func (p *Properties) SetResponseInformation(v string) {
	p.ResponseInformation = v
	p.Set(PropResponseInformation)
}
func (p *Properties) SetServerReference(v string) { p.ServerReference = v; p.Set(PropServerReference) }
func (p *Properties) SetReasonString(v string)    { p.ReasonString = v; p.Set(PropReasonString) }
func (p *Properties) SetReceiveMaximum(v uint16)  { p.ReceiveMaximum = v; p.Set(PropReceiveMaximum) }
func (p *Properties) SetTopicAliasMaximum(v uint16) {
	p.TopicAliasMaximum = v
	p.Set(PropTopicAliasMaximum)
}
func (p *Properties) SetTopicAlias(v uint16)    { p.TopicAlias = v; p.Set(PropTopicAlias) }
func (p *Properties) SetMaximumQoS(v byte)      { p.MaximumQoS = v; p.Set(PropMaximumQoS) }
func (p *Properties) SetRetainAvailable(v byte) { p.RetainAvailable = v; p.Set(PropRetainAvailable) }
func (p *Properties) SetMaximumPacketSize(v uint32) {
	p.MaximumPacketSize = v
	p.Set(PropMaximumPacketSize)
}
func (p *Properties) SetWildcardSubscriptionAvailable(v byte) {
	p.WildcardSubscriptionAvailable = v
	p.Set(PropWildcardSubscriptionAvailable)
}
func (p *Properties) SetSubscriptionIdentifiersAvailable(v byte) {
	p.SubscriptionIdentifiersAvailable = v
	p.Set(PropSubscriptionIdentifiersAvailable)
}
func (p *Properties) SetSharedSubscriptionAvailable(v byte) {
	p.SharedSubscriptionAvailable = v
	p.Set(PropSharedSubscriptionAvailable)
}

// AddUserProperty appends a User Property.
func (p *Properties) AddUserProperty(key, value string) {
	p.UserProperties = append(p.UserProperties, UserProperty{key, value})
}

type propKind byte

const (
	kNone propKind = iota
	kByte
	kU16
	kU32
	kVBI
	kString
	kBinary
	kPair
)

// propCtx is where properties appear: a packet type (1..15) or ctxWill.
const ctxWill = 16

const (
	mWill = 1 << ctxWill
	mConn = 1 << CONNECT
	mCack = 1 << CONNACK
	mPub  = 1 << PUBLISH
	mPuba = 1 << PUBACK
	mPrec = 1 << PUBREC
	mPrel = 1 << PUBREL
	mPcmp = 1 << PUBCOMP
	mSub  = 1 << SUBSCRIBE
	mSack = 1 << SUBACK
	mUns  = 1 << UNSUBSCRIBE
	mUack = 1 << UNSUBACK
	mDisc = 1 << DISCONNECT
	mAuth = 1 << AUTH
)

var propKinds = [64]propKind{
	PropPayloadFormat: kByte, PropMessageExpiry: kU32, PropContentType: kString,
	PropResponseTopic: kString, PropCorrelationData: kBinary, PropSubscriptionIdentifier: kVBI,
	PropSessionExpiry: kU32, PropAssignedClientIdentifier: kString, PropServerKeepAlive: kU16,
	PropAuthenticationMethod: kString, PropAuthenticationData: kBinary,
	PropRequestProblemInformation: kByte, PropWillDelay: kU32, PropRequestResponseInformation: kByte,
	PropResponseInformation: kString, PropServerReference: kString, PropReasonString: kString,
	PropReceiveMaximum: kU16, PropTopicAliasMaximum: kU16, PropTopicAlias: kU16, PropMaximumQoS: kByte,
	PropRetainAvailable: kByte, PropUserProperty: kPair, PropMaximumPacketSize: kU32,
	PropWildcardSubscriptionAvailable: kByte, PropSubscriptionIdentifiersAvailable: kByte,
	PropSharedSubscriptionAvailable: kByte,
}

// propAllowed is the table of MQTT 5.0 section 2.2.2.2: where each property may appear.
var propAllowed = [64]uint32{
	PropPayloadFormat: mPub | mWill, PropMessageExpiry: mPub | mWill, PropContentType: mPub | mWill,
	PropResponseTopic: mPub | mWill, PropCorrelationData: mPub | mWill,
	PropSubscriptionIdentifier: mPub | mSub, PropSessionExpiry: mConn | mCack | mDisc,
	PropAssignedClientIdentifier: mCack, PropServerKeepAlive: mCack,
	PropAuthenticationMethod: mConn | mCack | mAuth, PropAuthenticationData: mConn | mCack | mAuth,
	PropRequestProblemInformation: mConn, PropWillDelay: mWill, PropRequestResponseInformation: mConn,
	PropResponseInformation: mCack, PropServerReference: mCack | mDisc,
	PropReasonString:   mCack | mPuba | mPrec | mPrel | mPcmp | mSack | mUack | mDisc | mAuth,
	PropReceiveMaximum: mConn | mCack, PropTopicAliasMaximum: mConn | mCack, PropTopicAlias: mPub,
	PropMaximumQoS: mCack, PropRetainAvailable: mCack,
	PropUserProperty: mConn | mCack | mPub | mWill | mPuba | mPrec | mPrel | mPcmp | mSub | mSack |
		mUns | mUack | mDisc | mAuth,
	PropMaximumPacketSize: mConn | mCack, PropWildcardSubscriptionAvailable: mCack,
	PropSubscriptionIdentifiersAvailable: mCack, PropSharedSubscriptionAvailable: mCack,
}

var propNames = [64]string{
	PropPayloadFormat: "Payload Format Indicator", PropMessageExpiry: "Message Expiry Interval",
	PropContentType: "Content Type", PropResponseTopic: "Response Topic",
	PropCorrelationData: "Correlation Data", PropSubscriptionIdentifier: "Subscription Identifier",
	PropSessionExpiry: "Session Expiry Interval", PropAssignedClientIdentifier: "Assigned Client Identifier",
	PropServerKeepAlive: "Server Keep Alive", PropAuthenticationMethod: "Authentication Method",
	PropAuthenticationData: "Authentication Data", PropRequestProblemInformation: "Request Problem Information",
	PropWillDelay: "Will Delay Interval", PropRequestResponseInformation: "Request Response Information",
	PropResponseInformation: "Response Information", PropServerReference: "Server Reference",
	PropReasonString: "Reason String", PropReceiveMaximum: "Receive Maximum",
	PropTopicAliasMaximum: "Topic Alias Maximum", PropTopicAlias: "Topic Alias",
	PropMaximumQoS: "Maximum QoS", PropRetainAvailable: "Retain Available", PropUserProperty: "User Property",
	PropMaximumPacketSize: "Maximum Packet Size", PropWildcardSubscriptionAvailable: "Wildcard Subscription Available",
	PropSubscriptionIdentifiersAvailable: "Subscription Identifier Available",
	PropSharedSubscriptionAvailable:      "Shared Subscription Available",
}

// String returns the property's name as the specification writes it, e.g. "Receive Maximum".
func (id PropertyID) String() string {
	if id < 64 && propNames[id] != "" {
		return propNames[id]
	}
	return "PropertyID(0x" + strconv.FormatUint(uint64(id), 16) + ")"
}

// propOrder is the order properties are encoded in: ascending identifier.
var propOrder = [...]PropertyID{
	PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic, PropCorrelationData,
	PropSubscriptionIdentifier, PropSessionExpiry, PropAssignedClientIdentifier, PropServerKeepAlive,
	PropAuthenticationMethod, PropAuthenticationData, PropRequestProblemInformation, PropWillDelay,
	PropRequestResponseInformation, PropResponseInformation, PropServerReference, PropReasonString,
	PropReceiveMaximum, PropTopicAliasMaximum, PropTopicAlias, PropMaximumQoS, PropRetainAvailable,
	PropUserProperty, PropMaximumPacketSize, PropWildcardSubscriptionAvailable,
	PropSubscriptionIdentifiersAvailable, PropSharedSubscriptionAvailable,
}

func ctxType(ctx int) Type {
	if ctx == ctxWill {
		return CONNECT
	}
	return Type(ctx)
}

func ctxName(ctx int) string {
	if ctx == ctxWill {
		return "Will Properties"
	}
	return Type(ctx).String()
}

// checkValue applies the value rules of one property (shared by encode and decode).
func (p *Properties) checkValue(id PropertyID, ctx int, v Version) *Error {
	t := ctxType(ctx)
	bool01 := func(b byte) *Error {
		if b > 1 {
			return protoErr(t, "", id.String()+" must be 0 or 1, not "+strconv.Itoa(int(b)))
		}
		return nil
	}
	switch id {
	case PropPayloadFormat:
		return bool01(p.PayloadFormat)
	case PropRequestProblemInformation:
		return bool01(p.RequestProblemInformation)
	case PropRequestResponseInformation:
		return bool01(p.RequestResponseInformation)
	case PropMaximumQoS:
		return bool01(p.MaximumQoS)
	case PropRetainAvailable:
		return bool01(p.RetainAvailable)
	case PropWildcardSubscriptionAvailable:
		return bool01(p.WildcardSubscriptionAvailable)
	case PropSubscriptionIdentifiersAvailable:
		return bool01(p.SubscriptionIdentifiersAvailable)
	case PropSharedSubscriptionAvailable:
		return bool01(p.SharedSubscriptionAvailable)
	case PropReceiveMaximum:
		if p.ReceiveMaximum == 0 {
			return protoErr(t, "", "Receive Maximum must not be 0")
		}
	case PropMaximumPacketSize:
		if p.MaximumPacketSize == 0 {
			return protoErr(t, "", "Maximum Packet Size must not be 0")
		}
	case PropTopicAlias:
		if p.TopicAlias == 0 {
			return protoErr(t, "[MQTT-3.3.2-8]", "Topic Alias must not be 0")
		}
	case PropSubscriptionIdentifier:
		if ctx == int(SUBSCRIBE) && len(p.SubscriptionIdentifiers) > 1 {
			return protoErr(t, "", "Subscription Identifier appears more than once")
		}
		for _, s := range p.SubscriptionIdentifiers {
			if s == 0 {
				return protoErr(t, "", "Subscription Identifier must not be 0")
			}
			if s > MaxRemainingLength {
				return malformed(t, "", "Subscription Identifier exceeds 268,435,455")
			}
		}
	case PropResponseTopic:
		if err := checkUTF8(t, v, "Response Topic", p.ResponseTopic); err != nil {
			return err
		}
		if err := checkTopicName(t, v, "Response Topic", p.ResponseTopic); err != nil {
			return err
		}
	case PropContentType:
		return checkUTF8(t, v, id.String(), p.ContentType)
	case PropAssignedClientIdentifier:
		return checkUTF8(t, v, id.String(), p.AssignedClientIdentifier)
	case PropAuthenticationMethod:
		return checkUTF8(t, v, id.String(), p.AuthenticationMethod)
	case PropResponseInformation:
		return checkUTF8(t, v, id.String(), p.ResponseInformation)
	case PropServerReference:
		return checkUTF8(t, v, id.String(), p.ServerReference)
	case PropReasonString:
		return checkUTF8(t, v, id.String(), p.ReasonString)
	case PropCorrelationData:
		return checkBinary(t, id.String(), p.CorrelationData)
	case PropAuthenticationData:
		return checkBinary(t, id.String(), p.AuthenticationData)
	case PropUserProperty:
		for _, u := range p.UserProperties {
			if err := checkUTF8(t, v, "User Property name", u.Key); err != nil {
				return err
			}
			if err := checkUTF8(t, v, "User Property value", u.Value); err != nil {
				return err
			}
		}
	}
	return nil
}

// size validates the properties for ctx and returns the length of their encoding, without the
// property length prefix.
func (p *Properties) size(ctx int, v Version) (int, *Error) {
	if p.Empty() {
		return 0, nil
	}
	n := 0
	for _, id := range propOrder {
		if !p.Has(id) {
			continue
		}
		if propAllowed[id]&(1<<ctx) == 0 {
			return 0, protoErr(ctxType(ctx), "", id.String()+" is not allowed in "+ctxName(ctx))
		}
		if err := p.checkValue(id, ctx, v); err != nil {
			return 0, err
		}
		switch propKinds[id] {
		case kByte:
			n += 2
		case kU16:
			n += 3
		case kU32:
			n += 5
		case kVBI:
			for _, s := range p.SubscriptionIdentifiers {
				n += 1 + vbiLen(int(s))
			}
		case kString:
			n += 3 + len(p.strOrBin(id))
		case kBinary:
			n += 3 + len(p.binVal(id))
		case kPair:
			for _, u := range p.UserProperties {
				n += 5 + len(u.Key) + len(u.Value)
			}
		}
	}
	if n > MaxRemainingLength {
		return 0, &Error{Type: ctxType(ctx), Reason: PacketTooLarge, Msg: "properties too long"}
	}
	return n, nil
}

func (p *Properties) strOrBin(id PropertyID) string {
	switch id {
	case PropContentType:
		return p.ContentType
	case PropResponseTopic:
		return p.ResponseTopic
	case PropAssignedClientIdentifier:
		return p.AssignedClientIdentifier
	case PropAuthenticationMethod:
		return p.AuthenticationMethod
	case PropResponseInformation:
		return p.ResponseInformation
	case PropServerReference:
		return p.ServerReference
	case PropReasonString:
		return p.ReasonString
	}
	return ""
}

// appendProps appends the property length n (from size) and the properties.
func (p *Properties) appendProps(b []byte, n int) []byte {
	b = appendVBI(b, n)
	if n == 0 {
		return b
	}
	var done uint64
	ui, si := 0, 0
	for _, id := range p.order[:p.norder] {
		switch {
		case id == PropUserProperty:
			if ui < len(p.UserProperties) {
				u := p.UserProperties[ui]
				b = appendString(append(b, byte(id)), u.Key)
				b = appendString(b, u.Value)
				ui++
			}
		case id == PropSubscriptionIdentifier:
			if si < len(p.SubscriptionIdentifiers) {
				b = appendVBI(append(b, byte(id)), int(p.SubscriptionIdentifiers[si]))
				si++
			}
		case p.Has(id) && done&(1<<id) == 0:
			b = p.appendOne(b, id, nil, nil)
			done |= 1 << id
		}
	}
	for _, id := range propOrder {
		if !p.Has(id) || done&(1<<id) != 0 {
			continue
		}
		b = p.appendOne(b, id, p.UserProperties[ui:], p.SubscriptionIdentifiers[si:])
	}
	return b
}

// appendOne appends property id; for the list properties it appends ups or sids.
func (p *Properties) appendOne(b []byte, id PropertyID, ups []UserProperty, sids []uint32) []byte {
	switch propKinds[id] {
	case kByte:
		b = append(b, byte(id), p.byteVal(id))
	case kU16:
		b = appendU16(append(b, byte(id)), p.u16Val(id))
	case kU32:
		b = appendU32(append(b, byte(id)), p.u32Val(id))
	case kVBI:
		for _, s := range sids {
			b = appendVBI(append(b, byte(id)), int(s))
		}
	case kString:
		b = appendString(append(b, byte(id)), p.strOrBin(id))
	case kBinary:
		b = appendBinary(append(b, byte(id)), p.binVal(id))
	case kPair:
		for _, u := range ups {
			b = appendString(append(b, byte(id)), u.Key)
			b = appendString(b, u.Value)
		}
	}
	return b
}

func (p *Properties) binVal(id PropertyID) []byte {
	if id == PropCorrelationData {
		return p.CorrelationData
	}
	return p.AuthenticationData
}

func (p *Properties) byteVal(id PropertyID) byte {
	switch id {
	case PropPayloadFormat:
		return p.PayloadFormat
	case PropRequestProblemInformation:
		return p.RequestProblemInformation
	case PropRequestResponseInformation:
		return p.RequestResponseInformation
	case PropMaximumQoS:
		return p.MaximumQoS
	case PropRetainAvailable:
		return p.RetainAvailable
	case PropWildcardSubscriptionAvailable:
		return p.WildcardSubscriptionAvailable
	case PropSubscriptionIdentifiersAvailable:
		return p.SubscriptionIdentifiersAvailable
	case PropSharedSubscriptionAvailable:
		return p.SharedSubscriptionAvailable
	}
	return 0
}

func (p *Properties) setByte(id PropertyID, v byte) {
	switch id {
	case PropPayloadFormat:
		p.PayloadFormat = v
	case PropRequestProblemInformation:
		p.RequestProblemInformation = v
	case PropRequestResponseInformation:
		p.RequestResponseInformation = v
	case PropMaximumQoS:
		p.MaximumQoS = v
	case PropRetainAvailable:
		p.RetainAvailable = v
	case PropWildcardSubscriptionAvailable:
		p.WildcardSubscriptionAvailable = v
	case PropSubscriptionIdentifiersAvailable:
		p.SubscriptionIdentifiersAvailable = v
	case PropSharedSubscriptionAvailable:
		p.SharedSubscriptionAvailable = v
	}
}

func (p *Properties) u16Val(id PropertyID) uint16 {
	switch id {
	case PropServerKeepAlive:
		return p.ServerKeepAlive
	case PropReceiveMaximum:
		return p.ReceiveMaximum
	case PropTopicAliasMaximum:
		return p.TopicAliasMaximum
	case PropTopicAlias:
		return p.TopicAlias
	}
	return 0
}

func (p *Properties) setU16(id PropertyID, v uint16) {
	switch id {
	case PropServerKeepAlive:
		p.ServerKeepAlive = v
	case PropReceiveMaximum:
		p.ReceiveMaximum = v
	case PropTopicAliasMaximum:
		p.TopicAliasMaximum = v
	case PropTopicAlias:
		p.TopicAlias = v
	}
}

func (p *Properties) u32Val(id PropertyID) uint32 {
	switch id {
	case PropMessageExpiry:
		return p.MessageExpiryInterval
	case PropSessionExpiry:
		return p.SessionExpiryInterval
	case PropWillDelay:
		return p.WillDelayInterval
	case PropMaximumPacketSize:
		return p.MaximumPacketSize
	}
	return 0
}

func (p *Properties) setU32(id PropertyID, v uint32) {
	switch id {
	case PropMessageExpiry:
		p.MessageExpiryInterval = v
	case PropSessionExpiry:
		p.SessionExpiryInterval = v
	case PropWillDelay:
		p.WillDelayInterval = v
	case PropMaximumPacketSize:
		p.MaximumPacketSize = v
	}
}

func (p *Properties) setString(id PropertyID, v string) {
	switch id {
	case PropContentType:
		p.ContentType = v
	case PropResponseTopic:
		p.ResponseTopic = v
	case PropAssignedClientIdentifier:
		p.AssignedClientIdentifier = v
	case PropAuthenticationMethod:
		p.AuthenticationMethod = v
	case PropResponseInformation:
		p.ResponseInformation = v
	case PropServerReference:
		p.ServerReference = v
	case PropReasonString:
		p.ReasonString = v
	}
}

// decodeProps reads a property length and the properties it covers, for context ctx.
func (p *Properties) decode(r *reader, ctx int) {
	*p = Properties{}
	n := r.vbi("property length")
	if r.err != nil {
		return
	}
	if n > r.rest() {
		r.short("properties")
		return
	}
	end := r.off + n
	sub := reader{b: r.b[:end], off: r.off, t: r.t, v: r.v, arena: r.arena, arenaOff: r.arenaOff}
	t := ctxType(ctx)
	for sub.err == nil && sub.off < end {
		idv := sub.vbi("property identifier")
		if sub.err != nil {
			break
		}
		if idv >= 64 || propKinds[idv] == kNone {
			sub.err = malformed(t, "", "unknown property identifier 0x"+strconv.FormatUint(uint64(idv), 16))
			break
		}
		id := PropertyID(idv)
		if propAllowed[id]&(1<<ctx) == 0 {
			sub.err = protoErr(t, "", id.String()+" is not allowed in "+ctxName(ctx))
			break
		}
		if id != PropUserProperty && !(id == PropSubscriptionIdentifier && ctx == int(PUBLISH)) && p.Has(id) {
			sub.err = protoErr(t, "", id.String()+" appears more than once")
			break
		}
		switch propKinds[id] {
		case kByte:
			p.setByte(id, sub.u8(id.String()))
		case kU16:
			p.setU16(id, sub.u16(id.String()))
		case kU32:
			p.setU32(id, sub.u32(id.String()))
		case kVBI:
			p.SubscriptionIdentifiers = append(p.SubscriptionIdentifiers, uint32(sub.vbi(id.String())))
		case kString:
			p.setString(id, sub.str(id.String()))
		case kBinary:
			b := sub.binary(id.String())
			if id == PropCorrelationData {
				p.CorrelationData = b
			} else {
				p.AuthenticationData = b
			}
		case kPair:
			k := sub.str("User Property name")
			v := sub.str("User Property value")
			if sub.err == nil {
				p.UserProperties = append(p.UserProperties, UserProperty{k, v})
			}
		}
		if sub.err != nil {
			break
		}
		p.Set(id)
		if p.norder < uint8(len(p.order)) {
			p.order[p.norder] = id
			p.norder++
		}
		if k := propKinds[id]; k != kPair && k != kString && k != kBinary || id == PropResponseTopic {
			// strings were checked as they were read
			if err := p.checkValue(id, ctx, r.v); err != nil {
				sub.err = err
			}
		}
	}
	if sub.err != nil {
		r.err = sub.err
		return
	}
	r.off = end
	// Keep the order only when it is not the canonical one (ascending identifiers).
	canonical := true
	for i := 1; i < int(p.norder); i++ {
		if p.order[i] < p.order[i-1] {
			canonical = false
			break
		}
	}
	if canonical {
		p.order, p.norder = [len(p.order)]PropertyID{}, 0
	}
}
