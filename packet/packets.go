package packet

import "strconv"

func badVersion(t Type, v Version) *Error {
	return &Error{Type: t, Reason: UnsupportedProtocolVersion, Msg: "unsupported protocol version " + strconv.Itoa(int(v))}
}

func appendHeader(dst []byte, h byte, n int) []byte {
	dst = append(dst, h)
	return appendVBI(dst, n)
}

func tooLarge(t Type) *Error {
	return &Error{Type: t, Reason: PacketTooLarge, Msg: "remaining length exceeds 268,435,455 bytes"}
}

func zeroPacketID(t Type, v Version) *Error {
	return protoErr(t, rule(v, "[MQTT-2.3.1-1]", "[MQTT-2.2.1-3]"), "packet identifier must not be 0")
}

// propsSize validates props for ctx and returns the length of property length + properties.
func propsSize(p *Properties, ctx int, v Version) (total, n int, err *Error) {
	n, err = p.size(ctx, v)
	if err != nil {
		return 0, 0, err
	}
	return vbiLen(n) + n, n, nil
}

// ---- CONNECT ----

func (c *Connect) hasUser() bool { return c.HasUsername || c.Username != "" }
func (c *Connect) hasPass() bool { return c.HasPassword || len(c.Password) > 0 }

// Append encodes the CONNECT for v. Username and password count as present when their Has
// field is set or their value is non-empty.
func (c *Connect) Append(dst []byte, v Version) ([]byte, error) {
	const t = CONNECT
	if !v.Valid() {
		return dst, badVersion(t, v)
	}
	if c.Version != 0 && c.Version != v {
		return dst, protoErr(t, "", "Connect.Version "+c.Version.String()+" differs from the version encoded, "+v.String())
	}
	name := c.ProtocolName
	if name == "" {
		name = "MQTT"
	}
	if name != "MQTT" {
		return dst, protoErr(t, "[MQTT-3.1.2-1]", "protocol name must be \"MQTT\"")
	}
	if err := checkUTF8(t, v, "client identifier", c.ClientID); err != nil {
		return dst, err
	}
	if v == V311 && c.ClientID == "" && !c.CleanStart {
		return dst, protoErr(t, "[MQTT-3.1.3-7]", "an empty client identifier needs CleanSession set")
	}
	hasUser, hasPass := c.hasUser(), c.hasPass()
	if v == V311 && hasPass && !hasUser {
		return dst, protoErr(t, "[MQTT-3.1.2-22]", "a password needs a user name in MQTT 3.1.1")
	}
	if err := checkUTF8(t, v, "user name", c.Username); err != nil {
		return dst, err
	}
	if err := checkBinary(t, "password", c.Password); err != nil {
		return dst, err
	}
	n := 2 + len(name) + 1 + 1 + 2 + 2 + len(c.ClientID)
	var pn, wpn int
	if v == V5 {
		tot, k, err := propsSize(&c.Props, int(CONNECT), v)
		if err != nil {
			return dst, err
		}
		n += tot
		pn = k
	}
	flags := byte(0)
	if c.CleanStart {
		flags |= 0x02
	}
	if w := c.Will; w != nil {
		if !w.QoS.Valid() {
			return dst, malformed(t, rule(v, "[MQTT-3.1.2-14]", "[MQTT-3.1.2-12]"), "will QoS 3 is not allowed")
		}
		if err := checkUTF8(t, v, "will topic", w.Topic); err != nil {
			return dst, err
		}
		if w.Topic == "" {
			return dst, malformed(t, "[MQTT-4.7.3-1]", "will topic is empty")
		}
		if err := checkTopicName(t, v, "will topic", w.Topic); err != nil {
			return dst, err
		}
		if err := checkBinary(t, "will payload", w.Payload); err != nil {
			return dst, err
		}
		n += 2 + len(w.Topic) + 2 + len(w.Payload)
		if v == V5 {
			tot, k, err := propsSize(&w.Props, ctxWill, v)
			if err != nil {
				return dst, err
			}
			n += tot
			wpn = k
		}
		flags |= 0x04 | byte(w.QoS)<<3
		if w.Retain {
			flags |= 0x20
		}
	}
	if hasUser {
		n += 2 + len(c.Username)
		flags |= 0x80
	}
	if hasPass {
		n += 2 + len(c.Password)
		flags |= 0x40
	}
	dst = appendHeader(dst, byte(CONNECT)<<4, n)
	dst = appendString(dst, name)
	dst = append(dst, byte(v), flags)
	dst = appendU16(dst, c.KeepAlive)
	if v == V5 {
		dst = c.Props.appendProps(dst, pn)
	}
	dst = appendString(dst, c.ClientID)
	if w := c.Will; w != nil {
		if v == V5 {
			dst = w.Props.appendProps(dst, wpn)
		}
		dst = appendString(dst, w.Topic)
		dst = appendBinary(dst, w.Payload)
	}
	if hasUser {
		dst = appendString(dst, c.Username)
	}
	if hasPass {
		dst = appendBinary(dst, c.Password)
	}
	return dst, nil
}

func (c *Connect) decode(_ Version, flags byte, body []byte) *Error {
	const t = CONNECT
	*c = Connect{}
	r := reader{b: body, t: t, v: V5}
	nb := r.binary("protocol name")
	level := r.u8("protocol level")
	name := "MQTT"
	if string(nb) != name {
		name = string(nb)
	}
	if r.err != nil {
		return r.err
	}
	if name != "MQTT" {
		return &Error{Type: t, Rule: "[MQTT-3.1.2-1]", Reason: UnsupportedProtocolVersion, Msg: "protocol name " + quote(name) + " is not \"MQTT\""}
	}
	v := Version(level)
	if !v.Valid() {
		return &Error{Type: t, Rule: "[MQTT-3.1.2-2]", Reason: UnsupportedProtocolVersion, Msg: "unsupported protocol level " + strconv.Itoa(int(level))}
	}
	r.v = v
	c.ProtocolName = name
	c.Version = v
	cf := r.u8("connect flags")
	c.KeepAlive = r.u16("keep alive")
	if r.err != nil {
		return r.err
	}
	if cf&0x01 != 0 {
		return malformed(t, "[MQTT-3.1.2-3]", "reserved connect flag is set")
	}
	c.CleanStart = cf&0x02 != 0
	willFlag := cf&0x04 != 0
	willQoS := QoS(cf >> 3 & 0x03)
	willRetain := cf&0x20 != 0
	c.HasPassword = cf&0x40 != 0
	c.HasUsername = cf&0x80 != 0
	if willQoS == 3 {
		return malformed(t, rule(v, "[MQTT-3.1.2-14]", "[MQTT-3.1.2-12]"), "will QoS 3 is not allowed")
	}
	if !willFlag && willQoS != 0 {
		return malformed(t, rule(v, "[MQTT-3.1.2-13]", "[MQTT-3.1.2-11]"), "will QoS is set without a will")
	}
	if !willFlag && willRetain {
		return malformed(t, rule(v, "[MQTT-3.1.2-15]", "[MQTT-3.1.2-13]"), "will retain is set without a will")
	}
	if v == V311 && c.HasPassword && !c.HasUsername {
		return malformed(t, "[MQTT-3.1.2-22]", "password flag is set without user name flag")
	}
	r.useArena()
	if v == V5 {
		c.Props.decode(&r, int(CONNECT))
	}
	c.ClientID = r.str("client identifier")
	if willFlag {
		w := &Will{QoS: willQoS, Retain: willRetain}
		if v == V5 {
			w.Props.decode(&r, ctxWill)
		}
		w.Topic = r.str("will topic")
		w.Payload = r.binary("will payload")
		if r.err != nil {
			return r.err
		}
		if w.Topic == "" {
			return malformed(t, "[MQTT-4.7.3-1]", "will topic is empty")
		}
		if err := checkTopicName(t, v, "will topic", w.Topic); err != nil {
			return err
		}
		c.Will = w
	}
	if c.HasUsername {
		c.Username = r.str("user name")
	}
	if c.HasPassword {
		c.Password = r.binary("password")
	}
	r.end()
	return r.err
}

// ---- CONNACK ----

// Append encodes the CONNACK for v.
func (c *Connack) Append(dst []byte, v Version) ([]byte, error) {
	const t = CONNACK
	if !v.Valid() {
		return dst, badVersion(t, v)
	}
	if c.SessionPresent && c.ReasonCode != 0 {
		return dst, protoErr(t, rule(v, "[MQTT-3.2.2-4]", "[MQTT-3.2.2-6]"), "session present must be 0 with a non-zero reason code")
	}
	n := 2
	pn := 0
	if v == V311 {
		if c.ReasonCode > 5 {
			return dst, protoErr(t, "", "return code "+strconv.Itoa(int(c.ReasonCode))+" is reserved in MQTT 3.1.1")
		}
	} else {
		if !connackReasons.has(c.ReasonCode) {
			return dst, protoErr(t, "", "reason code "+c.ReasonCode.String()+" is not allowed in CONNACK")
		}
		tot, k, err := propsSize(&c.Props, int(t), v)
		if err != nil {
			return dst, err
		}
		n += tot
		pn = k
	}
	dst = appendHeader(dst, byte(t)<<4, n)
	sp := byte(0)
	if c.SessionPresent {
		sp = 1
	}
	dst = append(dst, sp, byte(c.ReasonCode))
	if v == V5 {
		dst = c.Props.appendProps(dst, pn)
	}
	return dst, nil
}

func (c *Connack) decode(v Version, flags byte, body []byte) *Error {
	const t = CONNACK
	*c = Connack{}
	r := reader{b: body, t: t, v: v}
	af := r.u8("acknowledge flags")
	c.ReasonCode = ReasonCode(r.u8("reason code"))
	if r.err != nil {
		return r.err
	}
	if af&0xFE != 0 {
		return malformed(t, "[MQTT-3.2.2-1]", "reserved acknowledge flags are set")
	}
	c.SessionPresent = af&1 != 0
	if c.SessionPresent && c.ReasonCode != 0 {
		return protoErr(t, rule(v, "[MQTT-3.2.2-4]", "[MQTT-3.2.2-6]"), "session present is set with a non-zero reason code")
	}
	if v == V311 {
		if c.ReasonCode > 5 {
			return protoErr(t, "", "return code "+strconv.Itoa(int(c.ReasonCode))+" is reserved in MQTT 3.1.1")
		}
	} else {
		if !connackReasons.has(c.ReasonCode) {
			return protoErr(t, "", "reason code "+c.ReasonCode.String()+" is not allowed in CONNACK")
		}
		c.Props.decode(&r, int(t))
	}
	r.end()
	return r.err
}

// ---- PUBLISH ----

// AppendHead appends the packet without its payload: the fixed header, with a remaining length
// that counts the payload, and the variable header. A writer sends the payload after it from
// the caller's slice, without copying it.
func (p *Publish) AppendHead(dst []byte, v Version) ([]byte, error) {
	const t = PUBLISH
	if !v.Valid() {
		return dst, badVersion(t, v)
	}
	if !p.QoS.Valid() {
		return dst, malformed(t, "[MQTT-3.3.1-4]", "QoS 3 is not allowed")
	}
	if p.QoS == 0 && p.Dup {
		return dst, malformed(t, "[MQTT-3.3.1-2]", "DUP must be 0 for QoS 0")
	}
	if p.QoS > 0 && p.PacketID == 0 {
		return dst, zeroPacketID(t, v)
	}
	if err := checkUTF8(t, v, "topic name", p.Topic); err != nil {
		return dst, err
	}
	if err := checkTopicName(t, v, "topic name", p.Topic); err != nil {
		return dst, err
	}
	n := 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		n += 2
	}
	pn := 0
	if v == V5 {
		if p.Topic == "" && !p.Props.Has(PropTopicAlias) {
			return dst, protoErr(t, "", "topic name is empty and there is no Topic Alias")
		}
		if !p.Props.Empty() {
			tot, k, err := propsSize(&p.Props, int(t), v)
			if err != nil {
				return dst, err
			}
			n += tot
			pn = k
		} else {
			n++
		}
	} else if p.Topic == "" {
		return dst, malformed(t, "[MQTT-4.7.3-1]", "topic name is empty")
	}
	if n > MaxRemainingLength {
		return dst, tooLarge(t)
	}
	h := byte(t)<<4 | byte(p.QoS)<<1
	if p.Dup {
		h |= 0x08
	}
	if p.Retain {
		h |= 0x01
	}
	dst = appendHeader(dst, h, n)
	dst = appendString(dst, p.Topic)
	if p.QoS > 0 {
		dst = appendU16(dst, p.PacketID)
	}
	if v == V5 {
		dst = p.Props.appendProps(dst, pn)
	}
	return dst, nil
}

// Append encodes the PUBLISH for v.
func (p *Publish) Append(dst []byte, v Version) ([]byte, error) {
	dst, err := p.AppendHead(dst, v)
	if err != nil {
		return dst, err
	}
	return append(dst, p.Payload...), nil
}

func (p *Publish) decode(v Version, flags byte, body []byte) *Error {
	const t = PUBLISH
	qos := QoS(flags >> 1 & 3)
	if qos == 3 {
		return malformed(t, "[MQTT-3.3.1-4]", "QoS 3 is not allowed")
	}
	*p = Publish{Dup: flags&0x08 != 0, QoS: qos, Retain: flags&0x01 != 0}
	if p.Dup && qos == 0 {
		return malformed(t, "[MQTT-3.3.1-2]", "DUP must be 0 for QoS 0")
	}
	r := reader{b: body, t: t, v: v}
	p.Topic = r.str("topic name")
	if qos > 0 {
		p.PacketID = r.u16("packet identifier")
		if r.err == nil && p.PacketID == 0 {
			return zeroPacketID(t, v)
		}
	}
	if r.err != nil {
		return r.err
	}
	if err := checkTopicName(t, v, "topic name", p.Topic); err != nil {
		return err
	}
	if v == V5 {
		if r.off < len(body) && body[r.off] == 0 {
			r.off++ // no properties: the common case, kept cheap
		} else {
			p.Props.decode(&r, int(t))
			if r.err != nil {
				return r.err
			}
		}
		if p.Topic == "" && !p.Props.Has(PropTopicAlias) {
			return protoErr(t, "", "topic name is empty and there is no Topic Alias")
		}
	} else if p.Topic == "" {
		return malformed(t, "[MQTT-4.7.3-1]", "topic name is empty")
	}
	if r.off > len(body) {
		r.short("properties")
		return r.err
	}
	p.Payload = body[r.off:len(body):len(body)]
	if len(p.Payload) == 0 {
		p.Payload = nil
	}
	return nil
}

// ---- PUBACK, PUBREC, PUBREL, PUBCOMP ----

func appendAck(dst []byte, t Type, v Version, pid uint16, rc ReasonCode, props *Properties, set *reasonSet) ([]byte, error) {
	if !v.Valid() {
		return dst, badVersion(t, v)
	}
	if pid == 0 {
		return dst, zeroPacketID(t, v)
	}
	h := byte(t) << 4
	if t == PUBREL {
		h |= 0x02
	}
	if v == V311 {
		if rc != 0 {
			return dst, protoErr(t, "", "reason codes need MQTT 5")
		}
		return append(dst, h, 2, byte(pid>>8), byte(pid)), nil
	}
	if !set.has(rc) {
		return dst, protoErr(t, "", "reason code "+rc.String()+" is not allowed in "+t.String())
	}
	if props.Empty() {
		if rc == 0 {
			return append(dst, h, 2, byte(pid>>8), byte(pid)), nil
		}
		return append(dst, h, 3, byte(pid>>8), byte(pid), byte(rc)), nil
	}
	tot, pn, err := propsSize(props, int(t), v)
	if err != nil {
		return dst, err
	}
	dst = appendHeader(dst, h, 3+tot)
	dst = append(dst, byte(pid>>8), byte(pid), byte(rc))
	return props.appendProps(dst, pn), nil
}

func decodeAck(v Version, t Type, body []byte, pid *uint16, rc *ReasonCode, props *Properties, set *reasonSet) *Error {
	*props = Properties{}
	*rc = 0
	r := reader{b: body, t: t, v: v}
	*pid = r.u16("packet identifier")
	if r.err != nil {
		return r.err
	}
	if *pid == 0 {
		return zeroPacketID(t, v)
	}
	if v == V5 && len(body) > 2 {
		*rc = ReasonCode(r.u8("reason code"))
		if !set.has(*rc) {
			return protoErr(t, "", "reason code "+rc.String()+" is not allowed in "+t.String())
		}
		if len(body) > 3 {
			props.decode(&r, int(t))
		}
	}
	r.end()
	return r.err
}

// Append encodes the PUBACK for v.
func (p *Puback) Append(dst []byte, v Version) ([]byte, error) {
	return appendAck(dst, PUBACK, v, p.PacketID, p.ReasonCode, &p.Props, &pubackReasons)
}

// Append encodes the PUBREC for v.
func (p *Pubrec) Append(dst []byte, v Version) ([]byte, error) {
	return appendAck(dst, PUBREC, v, p.PacketID, p.ReasonCode, &p.Props, &pubackReasons)
}

// Append encodes the PUBREL for v.
func (p *Pubrel) Append(dst []byte, v Version) ([]byte, error) {
	return appendAck(dst, PUBREL, v, p.PacketID, p.ReasonCode, &p.Props, &pubrelReasons)
}

// Append encodes the PUBCOMP for v.
func (p *Pubcomp) Append(dst []byte, v Version) ([]byte, error) {
	return appendAck(dst, PUBCOMP, v, p.PacketID, p.ReasonCode, &p.Props, &pubrelReasons)
}

func (p *Puback) decode(v Version, _ byte, body []byte) *Error {
	return decodeAck(v, PUBACK, body, &p.PacketID, &p.ReasonCode, &p.Props, &pubackReasons)
}
func (p *Pubrec) decode(v Version, _ byte, body []byte) *Error {
	return decodeAck(v, PUBREC, body, &p.PacketID, &p.ReasonCode, &p.Props, &pubackReasons)
}
func (p *Pubrel) decode(v Version, _ byte, body []byte) *Error {
	return decodeAck(v, PUBREL, body, &p.PacketID, &p.ReasonCode, &p.Props, &pubrelReasons)
}
func (p *Pubcomp) decode(v Version, _ byte, body []byte) *Error {
	return decodeAck(v, PUBCOMP, body, &p.PacketID, &p.ReasonCode, &p.Props, &pubrelReasons)
}

// ---- SUBSCRIBE ----

// countEntries counts the length-prefixed strings (each followed by extra bytes) in b, to size a
// slice once. It stops at the first entry that does not fit; the parse that follows reports it.
func countEntries(b []byte, extra int) int {
	n := 0
	for len(b) >= 2 {
		l := 2 + (int(b[0])<<8 | int(b[1])) + extra
		if l > len(b) {
			break
		}
		b = b[l:]
		n++
	}
	return n
}

func checkSubscription(t Type, v Version, s *Subscription, utf8Checked bool) *Error {
	if !utf8Checked {
		if err := checkUTF8(t, v, "topic filter", s.Filter); err != nil {
			return err
		}
	}
	if err := checkFilter(t, v, s.Filter); err != nil {
		return err
	}
	if !s.QoS.Valid() {
		// 3.1.1's statement is printed "MQTT-3-8.3-4" in its specification, a typo for this ID
		return malformed(t, rule(v, "[MQTT-3.8.3-4]", "[MQTT-3.8.3-5]"), "requested QoS 3 is not allowed")
	}
	if v == V311 {
		if s.NoLocal || s.RetainAsPublished || s.RetainHandling != 0 {
			return protoErr(t, "", "subscription options other than QoS need MQTT 5")
		}
		return nil
	}
	if s.RetainHandling > 2 {
		return protoErr(t, "", "Retain Handling 3 is not allowed")
	}
	if s.NoLocal && len(s.Filter) > 7 && s.Filter[:7] == "$share/" {
		return protoErr(t, "[MQTT-3.8.3-4]", "No Local must not be set on a shared subscription")
	}
	return nil
}

// Append encodes the SUBSCRIBE for v.
func (p *Subscribe) Append(dst []byte, v Version) ([]byte, error) {
	const t = SUBSCRIBE
	if !v.Valid() {
		return dst, badVersion(t, v)
	}
	if p.PacketID == 0 {
		return dst, zeroPacketID(t, v)
	}
	if len(p.Subscriptions) == 0 {
		return dst, protoErr(t, rule(v, "[MQTT-3.8.3-3]", "[MQTT-3.8.3-2]"), "no topic filter")
	}
	n := 2
	for i := range p.Subscriptions {
		s := &p.Subscriptions[i]
		if err := checkSubscription(t, v, s, false); err != nil {
			return dst, err
		}
		n += 3 + len(s.Filter)
	}
	pn := 0
	if v == V5 {
		tot, k, err := propsSize(&p.Props, int(t), v)
		if err != nil {
			return dst, err
		}
		n += tot
		pn = k
	}
	if n > MaxRemainingLength {
		return dst, tooLarge(t)
	}
	dst = appendHeader(dst, byte(t)<<4|0x02, n)
	dst = appendU16(dst, p.PacketID)
	if v == V5 {
		dst = p.Props.appendProps(dst, pn)
	}
	for i := range p.Subscriptions {
		s := &p.Subscriptions[i]
		dst = appendString(dst, s.Filter)
		o := byte(s.QoS)
		if s.NoLocal {
			o |= 0x04
		}
		if s.RetainAsPublished {
			o |= 0x08
		}
		o |= s.RetainHandling << 4
		dst = append(dst, o)
	}
	return dst, nil
}

func (p *Subscribe) decode(v Version, _ byte, body []byte) *Error {
	const t = SUBSCRIBE
	*p = Subscribe{}
	r := reader{b: body, t: t, v: v}
	p.PacketID = r.u16("packet identifier")
	if r.err == nil && p.PacketID == 0 {
		return zeroPacketID(t, v)
	}
	if v == V5 {
		p.Props.decode(&r, int(t))
	}
	if r.err != nil {
		return r.err
	}
	if r.rest() == 0 {
		return protoErr(t, rule(v, "[MQTT-3.8.3-3]", "[MQTT-3.8.3-2]"), "no topic filter")
	}
	p.Subscriptions = make([]Subscription, 0, countEntries(body[r.off:], 1))
	r.useArena()
	for r.err == nil && r.rest() > 0 {
		f := r.str("topic filter")
		o := r.u8("subscription options")
		if r.err != nil {
			break
		}
		if v == V311 && o&0xFC != 0 {
			return malformed(t, "[MQTT-3.8.3-4]", "reserved subscription option bits are set")
		}
		if v == V5 && o&0xC0 != 0 {
			return malformed(t, "[MQTT-3.8.3-5]", "reserved subscription option bits are set")
		}
		s := Subscription{Filter: f, QoS: QoS(o & 3), NoLocal: o&0x04 != 0, RetainAsPublished: o&0x08 != 0, RetainHandling: o >> 4 & 3}
		if err := checkSubscription(t, v, &s, true); err != nil {
			return err
		}
		p.Subscriptions = append(p.Subscriptions, s)
	}
	return r.err
}

// ---- SUBACK ----

// Append encodes the SUBACK for v.
func (p *Suback) Append(dst []byte, v Version) ([]byte, error) {
	const t = SUBACK
	if !v.Valid() {
		return dst, badVersion(t, v)
	}
	if p.PacketID == 0 {
		return dst, zeroPacketID(t, v)
	}
	if len(p.ReasonCodes) == 0 {
		return dst, protoErr(t, "", "no reason code")
	}
	set := &subackReasons
	if v == V311 {
		set = &suback311Return
	}
	for _, rc := range p.ReasonCodes {
		if !set.has(rc) {
			return dst, protoErr(t, rule(v, "[MQTT-3.9.3-2]", ""), "reason code "+rc.String()+" is not allowed in SUBACK")
		}
	}
	n := 2 + len(p.ReasonCodes)
	pn := 0
	if v == V5 {
		tot, k, err := propsSize(&p.Props, int(t), v)
		if err != nil {
			return dst, err
		}
		n += tot
		pn = k
	}
	if n > MaxRemainingLength {
		return dst, tooLarge(t)
	}
	dst = appendHeader(dst, byte(t)<<4, n)
	dst = appendU16(dst, p.PacketID)
	if v == V5 {
		dst = p.Props.appendProps(dst, pn)
	}
	for _, rc := range p.ReasonCodes {
		dst = append(dst, byte(rc))
	}
	return dst, nil
}

func decodeCodes(r *reader, v Version, set *reasonSet, rule string) ([]ReasonCode, *Error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.rest() == 0 {
		return nil, protoErr(r.t, "", "no reason code")
	}
	codes := make([]ReasonCode, r.rest())
	for i, c := range r.b[r.off:] {
		codes[i] = ReasonCode(c)
		if !set.has(codes[i]) {
			return nil, protoErr(r.t, rule, "reason code "+codes[i].String()+" is not allowed in "+r.t.String())
		}
	}
	r.off = len(r.b)
	return codes, nil
}

func (p *Suback) decode(v Version, _ byte, body []byte) *Error {
	const t = SUBACK
	*p = Suback{}
	r := reader{b: body, t: t, v: v}
	p.PacketID = r.u16("packet identifier")
	if r.err == nil && p.PacketID == 0 {
		return zeroPacketID(t, v)
	}
	set := &suback311Return
	if v == V5 {
		p.Props.decode(&r, int(t))
		set = &subackReasons
	}
	codes, err := decodeCodes(&r, v, set, rule(v, "[MQTT-3.9.3-2]", ""))
	if err != nil {
		return err
	}
	p.ReasonCodes = codes
	return nil
}

// ---- UNSUBSCRIBE ----

// Append encodes the UNSUBSCRIBE for v.
func (p *Unsubscribe) Append(dst []byte, v Version) ([]byte, error) {
	const t = UNSUBSCRIBE
	if !v.Valid() {
		return dst, badVersion(t, v)
	}
	if p.PacketID == 0 {
		return dst, zeroPacketID(t, v)
	}
	if len(p.Filters) == 0 {
		return dst, protoErr(t, "[MQTT-3.10.3-2]", "no topic filter")
	}
	n := 2
	for _, f := range p.Filters {
		if err := checkUTF8(t, v, "topic filter", f); err != nil {
			return dst, err
		}
		if err := checkFilter(t, v, f); err != nil {
			return dst, err
		}
		n += 2 + len(f)
	}
	pn := 0
	if v == V5 {
		tot, k, err := propsSize(&p.Props, int(t), v)
		if err != nil {
			return dst, err
		}
		n += tot
		pn = k
	}
	if n > MaxRemainingLength {
		return dst, tooLarge(t)
	}
	dst = appendHeader(dst, byte(t)<<4|0x02, n)
	dst = appendU16(dst, p.PacketID)
	if v == V5 {
		dst = p.Props.appendProps(dst, pn)
	}
	for _, f := range p.Filters {
		dst = appendString(dst, f)
	}
	return dst, nil
}

func (p *Unsubscribe) decode(v Version, _ byte, body []byte) *Error {
	const t = UNSUBSCRIBE
	*p = Unsubscribe{}
	r := reader{b: body, t: t, v: v}
	p.PacketID = r.u16("packet identifier")
	if r.err == nil && p.PacketID == 0 {
		return zeroPacketID(t, v)
	}
	if v == V5 {
		p.Props.decode(&r, int(t))
	}
	if r.err != nil {
		return r.err
	}
	if r.rest() == 0 {
		return protoErr(t, "[MQTT-3.10.3-2]", "no topic filter")
	}
	p.Filters = make([]string, 0, countEntries(body[r.off:], 0))
	r.useArena()
	for r.err == nil && r.rest() > 0 {
		f := r.str("topic filter")
		if r.err != nil {
			break
		}
		if err := checkFilter(t, v, f); err != nil {
			return err
		}
		p.Filters = append(p.Filters, f)
	}
	return r.err
}

// ---- UNSUBACK ----

// Append encodes the UNSUBACK for v (3.1.1: packet identifier only).
func (p *Unsuback) Append(dst []byte, v Version) ([]byte, error) {
	const t = UNSUBACK
	if !v.Valid() {
		return dst, badVersion(t, v)
	}
	if p.PacketID == 0 {
		return dst, zeroPacketID(t, v)
	}
	if v == V311 {
		if len(p.ReasonCodes) != 0 {
			return dst, protoErr(t, "", "UNSUBACK carries no reason codes in MQTT 3.1.1")
		}
		return append(dst, byte(t)<<4, 2, byte(p.PacketID>>8), byte(p.PacketID)), nil
	}
	if len(p.ReasonCodes) == 0 {
		return dst, protoErr(t, "", "no reason code")
	}
	for _, rc := range p.ReasonCodes {
		if !unsubackReason.has(rc) {
			return dst, protoErr(t, "", "reason code "+rc.String()+" is not allowed in UNSUBACK")
		}
	}
	tot, pn, err := propsSize(&p.Props, int(t), v)
	if err != nil {
		return dst, err
	}
	n := 2 + tot + len(p.ReasonCodes)
	if n > MaxRemainingLength {
		return dst, tooLarge(t)
	}
	dst = appendHeader(dst, byte(t)<<4, n)
	dst = appendU16(dst, p.PacketID)
	dst = p.Props.appendProps(dst, pn)
	for _, rc := range p.ReasonCodes {
		dst = append(dst, byte(rc))
	}
	return dst, nil
}

func (p *Unsuback) decode(v Version, _ byte, body []byte) *Error {
	const t = UNSUBACK
	*p = Unsuback{}
	r := reader{b: body, t: t, v: v}
	p.PacketID = r.u16("packet identifier")
	if r.err == nil && p.PacketID == 0 {
		return zeroPacketID(t, v)
	}
	if v == V311 {
		r.end()
		return r.err
	}
	p.Props.decode(&r, int(t))
	codes, err := decodeCodes(&r, v, &unsubackReason, "")
	if err != nil {
		return err
	}
	p.ReasonCodes = codes
	return nil
}

// ---- PINGREQ, PINGRESP ----

// Append encodes the PINGREQ.
func (p *Pingreq) Append(dst []byte, v Version) ([]byte, error) {
	if !v.Valid() {
		return dst, badVersion(PINGREQ, v)
	}
	return append(dst, byte(PINGREQ)<<4, 0), nil
}

// Append encodes the PINGRESP.
func (p *Pingresp) Append(dst []byte, v Version) ([]byte, error) {
	if !v.Valid() {
		return dst, badVersion(PINGRESP, v)
	}
	return append(dst, byte(PINGRESP)<<4, 0), nil
}

func decodeEmpty(t Type, body []byte) *Error {
	if len(body) != 0 {
		return malformed(t, "", "remaining length must be 0")
	}
	return nil
}

func (p *Pingreq) decode(_ Version, _ byte, body []byte) *Error  { return decodeEmpty(PINGREQ, body) }
func (p *Pingresp) decode(_ Version, _ byte, body []byte) *Error { return decodeEmpty(PINGRESP, body) }

// ---- DISCONNECT, AUTH ----

func appendReasonProps(dst []byte, t Type, v Version, rc ReasonCode, props *Properties, set *reasonSet) ([]byte, error) {
	h := byte(t) << 4
	if !set.has(rc) {
		return dst, protoErr(t, "", "reason code "+rc.String()+" is not allowed in "+t.String())
	}
	if props.Empty() {
		if rc == 0 {
			return append(dst, h, 0), nil
		}
		return append(dst, h, 1, byte(rc)), nil
	}
	tot, pn, err := propsSize(props, int(t), v)
	if err != nil {
		return dst, err
	}
	dst = appendHeader(dst, h, 1+tot)
	dst = append(dst, byte(rc))
	return props.appendProps(dst, pn), nil
}

func decodeReasonProps(t Type, v Version, body []byte, rc *ReasonCode, props *Properties, set *reasonSet) *Error {
	*rc = 0
	*props = Properties{}
	if len(body) == 0 {
		return nil
	}
	r := reader{b: body, t: t, v: v}
	*rc = ReasonCode(r.u8("reason code"))
	if !set.has(*rc) {
		return protoErr(t, "", "reason code "+rc.String()+" is not allowed in "+t.String())
	}
	if len(body) > 1 {
		props.decode(&r, int(t))
	}
	r.end()
	return r.err
}

// Append encodes the DISCONNECT for v (3.1.1: no reason code, no properties).
func (p *Disconnect) Append(dst []byte, v Version) ([]byte, error) {
	const t = DISCONNECT
	if !v.Valid() {
		return dst, badVersion(t, v)
	}
	if v == V311 {
		if p.ReasonCode != 0 {
			return dst, protoErr(t, "", "reason codes need MQTT 5")
		}
		return append(dst, byte(t)<<4, 0), nil
	}
	return appendReasonProps(dst, t, v, p.ReasonCode, &p.Props, &disconnReasons)
}

func (p *Disconnect) decode(v Version, _ byte, body []byte) *Error {
	if v == V311 {
		*p = Disconnect{}
		return decodeEmpty(DISCONNECT, body)
	}
	return decodeReasonProps(DISCONNECT, v, body, &p.ReasonCode, &p.Props, &disconnReasons)
}

// Append encodes the AUTH packet; it exists in MQTT 5 only.
func (p *Auth) Append(dst []byte, v Version) ([]byte, error) {
	const t = AUTH
	if v != V5 {
		if v == V311 {
			return dst, protoErr(t, "", "AUTH does not exist in MQTT 3.1.1")
		}
		return dst, badVersion(t, v)
	}
	return appendReasonProps(dst, t, v, p.ReasonCode, &p.Props, &authReasons)
}

func (p *Auth) decode(v Version, _ byte, body []byte) *Error {
	return decodeReasonProps(AUTH, v, body, &p.ReasonCode, &p.Props, &authReasons)
}
