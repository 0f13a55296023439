package cmdutil

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// MQTT 5 properties given with -D, as mosquitto_pub/sub take them:
//
//	-D command identifier value
//	-D command user-property name value
//
// The command words are the packet (or will) that carries the property; the identifiers are the
// property names of the MQTT 5 specification (section 2.2.2.2) with '-' between words.

// propArgSep joins the words of one -D occurrence after preprocessing (see joinPropertyArgs).
const propArgSep = "\x1f"

type propKind int

const (
	propByte propKind = iota
	propU16
	propU32
	propVarInt
	propString
	propBinary
	propPair
)

var propKinds = map[string]propKind{
	"payload-format-indicator":     propByte,
	"message-expiry-interval":      propU32,
	"content-type":                 propString,
	"response-topic":               propString,
	"correlation-data":             propBinary,
	"subscription-identifier":      propVarInt,
	"session-expiry-interval":      propU32,
	"authentication-method":        propString,
	"authentication-data":          propBinary,
	"request-problem-information":  propByte,
	"will-delay-interval":          propU32,
	"request-response-information": propByte,
	"reason-string":                propString,
	"receive-maximum":              propU16,
	"topic-alias-maximum":          propU16,
	"topic-alias":                  propU16,
	"user-property":                propPair,
	"maximum-packet-size":          propU32,
}

// propAllowed lists the properties a client may send in each packet (MQTT 5.0 section 3.x.2.2).
var propAllowed = map[string][]string{
	"connect": {"session-expiry-interval", "receive-maximum", "maximum-packet-size", "request-response-information", "request-problem-information", "user-property", "authentication-method", "authentication-data"},
	"publish": {"payload-format-indicator", "message-expiry-interval", "response-topic", "correlation-data", "user-property", "content-type"},
	"will":    {"will-delay-interval", "payload-format-indicator", "message-expiry-interval", "content-type", "response-topic", "correlation-data", "user-property"},
}

// propNotYet names what mosquitto accepts but fennec does not send yet, to say so instead of
// ignoring the property.
var propNotYet = map[string]string{
	"subscribe":           "properties on SUBSCRIBE are not supported yet",
	"unsubscribe":         "properties on UNSUBSCRIBE are not supported yet",
	"disconnect":          "properties on DISCONNECT are not supported yet",
	"topic-alias":         "topic aliases are not supported yet",
	"topic-alias-maximum": "topic aliases are not supported yet (fennec announces Topic Alias Maximum 0)",
}

// prop is one parsed -D property.
type prop struct {
	Name  string
	Key   string // user-property name
	Value string
	Num   uint32 // numeric kinds
}

// propSet holds the parsed properties by command word.
type propSet map[string][]prop

func (ps propSet) get(cmd, name string) (prop, bool) {
	for _, p := range ps[cmd] {
		if p.Name == name {
			return p, true
		}
	}
	return prop{}, false
}

func (ps propSet) users(cmd string) [][2]string {
	var out [][2]string
	for _, p := range ps[cmd] {
		if p.Name == "user-property" {
			out = append(out, [2]string{p.Key, p.Value})
		}
	}
	return out
}

func (ps propSet) u32(cmd, name string) *uint32 {
	if p, ok := ps.get(cmd, name); ok {
		v := p.Num
		return &v
	}
	return nil
}

// MessageProps returns the publish-style properties given for cmd ("publish" or "will").
func (ps propSet) MessageProps(cmd string) msgProps {
	var mp msgProps
	if p, ok := ps.get(cmd, "payload-format-indicator"); ok {
		b := byte(p.Num)
		mp.PayloadFormat = &b
	}
	mp.MessageExpiry = ps.u32(cmd, "message-expiry-interval")
	if p, ok := ps.get(cmd, "response-topic"); ok {
		mp.ResponseTopic = p.Value
	}
	if p, ok := ps.get(cmd, "correlation-data"); ok {
		mp.CorrelationData = []byte(p.Value)
	}
	if p, ok := ps.get(cmd, "content-type"); ok {
		mp.ContentType = p.Value
	}
	mp.User = ps.users(cmd)
	return mp
}

// parseProps parses the -D values collected by the flag set.
func parseProps(raw []string) (propSet, error) {
	ps := propSet{}
	for _, r := range raw {
		words := strings.Split(r, propArgSep)
		if len(words) < 3 {
			return nil, UsageErrorf("-D needs a command, a property and a value: -D connect session-expiry-interval 60 (got %q)", strings.Join(words, " "))
		}
		cmd, name := strings.ToLower(words[0]), strings.ToLower(words[1])
		if why, ok := propNotYet[cmd]; ok {
			return nil, UsageErrorf("-D %s: %s", words[0], why)
		}
		if why, ok := propNotYet[name]; ok {
			return nil, UsageErrorf("-D %s %s: %s", cmd, name, why)
		}
		allowed, ok := propAllowed[cmd]
		if !ok {
			return nil, UsageErrorf("-D %s: unknown command; use one of %s", words[0], strings.Join(sortedKeys(propAllowed), ", "))
		}
		kind, ok := propKinds[name]
		if !ok || !contains(allowed, name) {
			return nil, UsageErrorf("-D %s %s: not a property a client can send in %s; allowed: %s", cmd, words[1], strings.ToUpper(cmd), strings.Join(allowed, ", "))
		}
		p := prop{Name: name}
		switch {
		case kind == propPair:
			if len(words) != 4 {
				return nil, UsageErrorf("-D %s user-property needs a name and a value", cmd)
			}
			p.Key, p.Value = words[2], words[3]
		case len(words) != 3:
			return nil, UsageErrorf("-D %s %s takes one value", cmd, name)
		default:
			p.Value = words[2]
		}
		if _, dup := ps.get(cmd, name); dup && kind != propPair && kind != propVarInt {
			return nil, UsageErrorf("-D %s %s given twice; it may appear only once", cmd, name)
		}
		var max uint64
		switch kind {
		case propByte:
			max = 1
		case propU16:
			max = math.MaxUint16
		case propU32:
			max = math.MaxUint32
		case propVarInt:
			max = 268435455
		}
		if max > 0 {
			n, err := strconv.ParseUint(p.Value, 10, 64)
			if err != nil || n > max {
				return nil, UsageErrorf("-D %s %s: %q is not a number from 0 to %d", cmd, name, p.Value, max)
			}
			if (name == "receive-maximum" || name == "maximum-packet-size" || name == "subscription-identifier" || name == "topic-alias") && n == 0 {
				return nil, UsageErrorf("-D %s %s: 0 is not allowed (MQTT 5.0 section 3)", cmd, name)
			}
			p.Num = uint32(n)
		}
		ps[cmd] = append(ps[cmd], p)
	}
	return ps, nil
}

// JoinPropertyArgs rewrites "-D cmd id value" (and "-D cmd user-property name value") into a single
// argument so that the flag parser, which takes one value per flag, sees the whole property.
func JoinPropertyArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		if a != "-D" && a != "--property" {
			out = append(out, a)
			continue
		}
		n := 3
		if i+2 < len(args) && strings.EqualFold(args[i+2], "user-property") {
			n = 4
		}
		end := i + 1 + n
		if end > len(args) {
			end = len(args)
		}
		out = append(out, a, strings.Join(args[i+1:end], propArgSep))
		i = end - 1
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func UsageErrorf(format string, args ...any) error {
	return UsageError{fmt.Errorf(format, args...)}
}
