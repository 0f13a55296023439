package cmdutil

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// FormatMessage renders m with a mosquitto_sub -F format string: %-sequences for the message,
// @-sequences for the time (strftime), and \-escapes. An unknown %-parameter is an error, as in
// mosquitto_sub; other unknown sequences are printed as given. See `fennec help format`.
func FormatMessage(format string, m *Message) (string, error) {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		switch c {
		case '%':
			j := i + 1
			leftAlign, zero := false, false
			for j < len(format) && (format[j] == '-' || format[j] == '0') {
				if format[j] == '-' {
					leftAlign = true
				} else {
					zero = true
				}
				j++
			}
			width, prec := -1, -1
			k := j
			for k < len(format) && format[k] >= '0' && format[k] <= '9' {
				k++
			}
			if k > j {
				width, _ = strconv.Atoi(format[j:k])
			}
			j = k
			if j < len(format) && format[j] == '.' {
				k = j + 1
				for k < len(format) && format[k] >= '0' && format[k] <= '9' {
					k++
				}
				prec, _ = strconv.Atoi(format[j+1 : k])
				j = k
			}
			if j >= len(format) {
				b.WriteString(format[i:])
				return b.String(), nil
			}
			v, numeric, ok, err := formatParam(format[j], m)
			if err != nil {
				return "", err
			}
			if !ok {
				return "", fmt.Errorf("-F %q: unknown parameter %%%c (see 'fennec help format')", format, format[j])
			}
			if prec >= 0 && !numeric && len(v) > prec {
				v = v[:prec]
			}
			b.WriteString(pad(v, width, leftAlign, zero && numeric))
			i = j
		case '@':
			if i+1 >= len(format) {
				b.WriteByte('@')
				continue
			}
			i++
			b.WriteString(strftime(format[i], m.Time))
		case '\\':
			if i+1 >= len(format) {
				b.WriteByte('\\')
				continue
			}
			i++
			switch format[i] {
			case '\\':
				b.WriteByte('\\')
			case '0':
				b.WriteByte(0)
			case 'a':
				b.WriteByte('\a')
			case 'e':
				b.WriteByte(0x1b)
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'v':
				b.WriteByte('\v')
			default:
				b.WriteByte('\\')
				b.WriteByte(format[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func pad(v string, width int, left, zero bool) string {
	n := utf8.RuneCountInString(v)
	if width <= n {
		return v
	}
	fill := strings.Repeat(" ", width-n)
	if left {
		return v + fill
	}
	if zero {
		return strings.Repeat("0", width-n) + v
	}
	return fill + v
}

// CheckFormat reports an unknown %-parameter in a -F format before anything is received.
func CheckFormat(format string) error {
	_, err := FormatMessage(format, &Message{Payload: []byte("{}"), Time: time.Now()})
	return err
}

// formatParam returns the value of one %-parameter, whether it is numeric (for 0 padding) and
// whether the parameter is known.
func formatParam(c byte, m *Message) (v string, numeric, ok bool, err error) {
	p := m.Props
	switch c {
	case '%':
		return "%", false, true, nil
	case 'A':
		if p.TopicAlias != nil {
			return strconv.Itoa(int(*p.TopicAlias)), true, true, nil
		}
		return "", true, true, nil
	case 'C':
		return p.ContentType, false, true, nil
	case 'D':
		return string(p.CorrelationData), false, true, nil
	case 'E':
		if p.MessageExpiry != nil {
			return strconv.FormatUint(uint64(*p.MessageExpiry), 10), true, true, nil
		}
		return "", true, true, nil
	case 'F':
		if p.PayloadFormat != nil {
			return strconv.Itoa(int(*p.PayloadFormat)), true, true, nil
		}
		return "", true, true, nil
	case 'I':
		return m.Time.Format("2006-01-02T15:04:05-0700"), false, true, nil
	case 'j', 'J':
		s, err := messageJSONMosquitto(m, c == 'J')
		return s, false, true, err
	case 'l':
		return strconv.Itoa(len(m.Payload)), true, true, nil
	case 'm':
		return strconv.Itoa(int(m.PacketID)), true, true, nil
	case 'P':
		var parts []string
		for _, u := range p.User {
			parts = append(parts, u[0]+":"+u[1])
		}
		return strings.Join(parts, " "), false, true, nil
	case 'p':
		return string(m.Payload), false, true, nil
	case 'q':
		return strconv.Itoa(int(m.QoS)), true, true, nil
	case 'R':
		return p.ResponseTopic, false, true, nil
	case 'r':
		if m.Retain {
			return "1", true, true, nil
		}
		return "0", true, true, nil
	case 'S':
		var ids []string
		for _, id := range p.SubscriptionIDs {
			ids = append(ids, strconv.Itoa(id))
		}
		return strings.Join(ids, ","), true, true, nil
	case 't':
		return m.Topic, false, true, nil
	case 'U':
		return fmt.Sprintf("%d.%09d", m.Time.Unix(), m.Time.Nanosecond()), false, true, nil
	case 'x':
		return hex.EncodeToString(m.Payload), true, true, nil
	case 'X':
		return strings.ToUpper(hex.EncodeToString(m.Payload)), true, true, nil
	}
	return "", false, false, nil
}

// messageJSONMosquitto is the %j / %J object of mosquitto_sub.
func messageJSONMosquitto(m *Message, rawPayload bool) (string, error) {
	retain := 0
	if m.Retain {
		retain = 1
	}
	// The fields, their order and formats are mosquitto_sub's (2.0): tst is its strftime
	// "%Y-%m-%dT%H:%M:%S.uuuuuuZ%z", a literal Z followed by the zone offset; payloadlen; the
	// MQTT 5 properties under "properties", in the order a mosquitto broker sends them.
	head := fmt.Sprintf(`{"tst":%q,"topic":%s,"qos":%d,"retain":%d,"payloadlen":%d,%s"payload":`,
		m.Time.Format("2006-01-02T15:04:05.000000")+"Z"+m.Time.Format("-0700"), jsonString(m.Topic), m.QoS, retain, len(m.Payload), mosquittoProps(m.Props))
	if rawPayload {
		if !json.Valid(m.Payload) {
			return "", fmt.Errorf("message payload on topic %q is not valid JSON (%%J needs a JSON payload; %%j quotes it)", m.Topic)
		}
		return head + string(m.Payload) + "}", nil
	}
	return head + jsonString(string(m.Payload)) + "}", nil
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// strftime implements the conversions of C's strftime that are the same on every platform,
// plus mosquitto's @N (nanoseconds).
func strftime(c byte, t time.Time) string {
	switch c {
	case '@':
		return "@"
	case 'N':
		return fmt.Sprintf("%09d", t.Nanosecond())
	case 'Y':
		return t.Format("2006")
	case 'y':
		return t.Format("06")
	case 'm':
		return t.Format("01")
	case 'd':
		return t.Format("02")
	case 'e':
		return fmt.Sprintf("%2d", t.Day())
	case 'H':
		return t.Format("15")
	case 'I':
		return t.Format("03")
	case 'M':
		return t.Format("04")
	case 'S':
		return t.Format("05")
	case 'p':
		return t.Format("PM")
	case 'b', 'h':
		return t.Format("Jan")
	case 'B':
		return t.Format("January")
	case 'a':
		return t.Format("Mon")
	case 'A':
		return t.Format("Monday")
	case 'j':
		return fmt.Sprintf("%03d", t.YearDay())
	case 'z':
		return t.Format("-0700")
	case 'Z':
		return t.Format("MST")
	case 's':
		return strconv.FormatInt(t.Unix(), 10)
	case 'F':
		return t.Format("2006-01-02")
	case 'T':
		return t.Format("15:04:05")
	case 'D':
		return t.Format("01/02/06")
	case 'R':
		return t.Format("15:04")
	case 'c':
		return t.Format("Mon Jan _2 15:04:05 2006")
	case 'u':
		wd := int(t.Weekday())
		if wd == 0 {
			wd = 7
		}
		return strconv.Itoa(wd)
	case 'w':
		return strconv.Itoa(int(t.Weekday()))
	case 'n':
		return "\n"
	case 't':
		return "\t"
	case '%':
		return "%"
	}
	return "@" + string(c)
}

// MessageJSON is the --json object for one received message.
func MessageJSON(m *Message) []byte {
	obj := map[string]any{
		"time":        m.Time.UTC().Format(time.RFC3339Nano),
		"topic":       m.Topic,
		"qos":         m.QoS,
		"retain":      m.Retain,
		"payload_len": len(m.Payload),
	}
	if m.Dup {
		obj["dup"] = true
	}
	if m.PacketID != 0 {
		obj["packet_id"] = m.PacketID
	}
	if utf8.Valid(m.Payload) {
		obj["payload"] = string(m.Payload)
	} else {
		obj["payload_base64"] = m.Payload // encoding/json writes []byte as base64
	}
	props := map[string]any{}
	p := m.Props
	if p.PayloadFormat != nil {
		props["payload_format_indicator"] = *p.PayloadFormat
	}
	if p.MessageExpiry != nil {
		props["message_expiry_interval"] = *p.MessageExpiry
	}
	if p.TopicAlias != nil {
		props["topic_alias"] = *p.TopicAlias
	}
	if p.ResponseTopic != "" {
		props["response_topic"] = p.ResponseTopic
	}
	if p.CorrelationData != nil {
		props["correlation_data"] = p.CorrelationData
	}
	if p.ContentType != "" {
		props["content_type"] = p.ContentType
	}
	if len(p.SubscriptionIDs) > 0 {
		props["subscription_identifiers"] = p.SubscriptionIDs
	}
	if len(p.User) > 0 {
		var up [][2]string
		up = append(up, p.User...)
		props["user_properties"] = up
	}
	if len(props) > 0 {
		obj["properties"] = props
	}
	b, _ := json.Marshal(obj)
	return b
}

const FormatHelp = `fennec sub -F FORMAT prints each message with a format string, as mosquitto_sub does. A
newline is added after each message unless -N is given.

Message parameters (%):
  %t  topic                       %p  payload (raw bytes)
  %q  QoS                         %l  payload length in bytes
  %r  retain flag (0 or 1)        %m  packet identifier (0 for QoS 0)
  %x  payload as hex (lower)      %X  payload as hex (upper)
  %I  ISO 8601 time               %U  Unix time with nanoseconds
  %j  JSON: time, topic, qos, retain, payload (quoted)
  %J  the same with the payload unquoted (it must be JSON)
  %C  content type (MQTT 5)       %D  correlation data (MQTT 5)
  %E  message expiry (MQTT 5)     %F  payload format indicator (MQTT 5)
  %A  topic alias (MQTT 5)        %R  response topic (MQTT 5)
  %S  subscription identifiers    %P  user properties as key:value (MQTT 5)
  %%  a literal %

Width and flags as in printf: %10t (at least 10 wide), %-10t (left aligned), %05l (zero padded
numbers), %.20t (at most 20 characters of text). An unknown parameter is refused (exit 2).

Time (@, as strftime with @ for %): @Y @m @d @H @M @S @z @Z @s @F @T @j ..., @N nanoseconds,
@@ a literal @.

Escapes: \n newline, \t tab, \r, \v, \a, \e (ANSI colours), \0 (NUL, for xargs -0), \\.

Examples:
  fennec sub -t 'sensors/#' -F '%t %p'
  fennec sub -t 'sensors/#' -F '@H:@M:@S %-30t %l bytes QoS %q'
  fennec sub -t 'sensors/#' -F '%j'
`

// mosquittoProps is the "properties" member of mosquitto_sub's %j, with its comma, or "" when
// the message has none. The Subscription Identifier the fennec client adds to its own
// subscriptions is left out: mosquitto_sub sends none, so it has none to print.
func mosquittoProps(p msgProps) string {
	var parts []string
	if p.PayloadFormat != nil {
		parts = append(parts, fmt.Sprintf(`"payload-format-indicator":%d`, *p.PayloadFormat))
	}
	if p.ResponseTopic != "" {
		parts = append(parts, `"response-topic":`+jsonString(p.ResponseTopic))
	}
	if p.CorrelationData != nil {
		parts = append(parts, `"correlation-data":`+jsonString(string(p.CorrelationData)))
	}
	if p.ContentType != "" {
		parts = append(parts, `"content-type":`+jsonString(p.ContentType))
	}
	if len(p.User) > 0 {
		var us []string
		for _, u := range p.User {
			us = append(us, jsonString(u[0])+":"+jsonString(u[1]))
		}
		parts = append(parts, `"user-properties":{`+strings.Join(us, ",")+"}")
	}
	if p.MessageExpiry != nil {
		parts = append(parts, fmt.Sprintf(`"message-expiry-interval":%d`, *p.MessageExpiry))
	}
	if len(parts) == 0 {
		return ""
	}
	return `"properties":{` + strings.Join(parts, ",") + "},"
}
