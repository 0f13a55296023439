package topic

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// MaxLength is the longest topic name or filter MQTT can carry: 65,535 bytes of UTF-8.
const MaxLength = 65535

// SharePrefix starts every shared subscription filter.
const SharePrefix = "$share/"

// ErrInvalid is matched (errors.Is) by every *Error of this package.
var ErrInvalid = errors.New("topic: invalid topic")

// Error says why a topic name or filter is invalid, naming the rule it breaks.
type Error struct {
	Topic string // the name or filter concerned (cut to 64 bytes)
	Rule  string // conformance statement, e.g. "[MQTT-4.7.1-2]" ("" when none applies)
	Msg   string
}

func (e *Error) Error() string {
	s := "topic: " + e.Msg + ": " + quote(e.Topic)
	if e.Rule != "" {
		s += " " + e.Rule
	}
	return s
}

// Is reports whether target is ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return "\"" + s + "\""
}

func invalid(s, rule, msg string) *Error { return &Error{Topic: s, Rule: rule, Msg: msg} }

// checkString applies the rules every topic string obeys: at least one character
// [MQTT-4.7.3-1], at most 65,535 bytes, well-formed UTF-8 [MQTT-1.5.3-1] without U+0000
// [MQTT-4.7.3-2].
func checkString(s, what string) error {
	if s == "" {
		return invalid(s, "[MQTT-4.7.3-1]", what+" is empty")
	}
	if len(s) > MaxLength {
		return invalid(s, "", what+" is longer than 65,535 bytes")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return invalid(s, "[MQTT-4.7.3-2]", what+" contains U+0000")
	}
	if !utf8.ValidString(s) {
		return invalid(s, "[MQTT-1.5.3-1]", what+" is not well-formed UTF-8")
	}
	return nil
}

// ValidateName reports whether name may be used as the topic of a PUBLISH: the rules of
// checkString, and no wildcard characters [MQTT-3.3.2-2]. The rules are the same in MQTT 3.1.1
// and 5.0. Names starting with '$' are valid (servers use them, e.g. "$SYS/...").
func ValidateName(name string) error {
	if err := checkString(name, "topic name"); err != nil {
		return err
	}
	if strings.ContainsAny(name, "+#") {
		return invalid(name, "[MQTT-3.3.2-2]", "topic name contains a wildcard character")
	}
	return nil
}

// ValidateFilter reports whether filter may be subscribed to: the string rules of ValidateName,
// '#' only as a whole last level [MQTT-4.7.1-2] and '+' only as a whole level [MQTT-4.7.1-3]
// (MQTT 5.0 numbers these 4.7.1-1 and 4.7.1-2). A filter starting with "$share/" must also be a
// well-formed shared subscription (see ParseShared).
func ValidateFilter(filter string) error {
	if strings.HasPrefix(filter, SharePrefix) {
		_, _, err := ParseShared(filter)
		return err
	}
	return validatePlain(filter, filter)
}

func validatePlain(filter, whole string) error {
	if err := checkString(filter, "topic filter"); err != nil {
		if e, ok := err.(*Error); ok {
			e.Topic = whole
		}
		return err
	}
	for i := 0; i < len(filter); i++ {
		switch filter[i] {
		case '#':
			if (i > 0 && filter[i-1] != '/') || i != len(filter)-1 {
				return invalid(whole, "[MQTT-4.7.1-2]", "'#' must be a whole level and the last one")
			}
		case '+':
			if (i > 0 && filter[i-1] != '/') || (i < len(filter)-1 && filter[i+1] != '/') {
				return invalid(whole, "[MQTT-4.7.1-3]", "'+' must occupy a whole level")
			}
		}
	}
	return nil
}

// HasWildcard reports whether filter contains '+' or '#'.
func HasWildcard(filter string) bool { return strings.ContainsAny(filter, "+#") }

// IsShared reports whether filter is a shared subscription ("$share/...").
func IsShared(filter string) bool { return strings.HasPrefix(filter, SharePrefix) }

// ParseShared splits a shared subscription "$share/<group>/<filter>" into its share name and its
// topic filter, and validates both: the share name is at least one character without '/', '+' or
// '#' [MQTT-4.8.2-1], and a topic filter follows it [MQTT-4.8.2-2]. For a filter that does not
// start with "$share/" it returns "", filter, nil, so it can be called on every filter.
func ParseShared(filter string) (group, topicFilter string, err error) {
	if !IsShared(filter) {
		return "", filter, nil
	}
	rest := filter[len(SharePrefix):]
	i := strings.IndexByte(rest, '/')
	if i < 0 {
		if rest == "" {
			return "", "", invalid(filter, "[MQTT-4.8.2-1]", "shared subscription has no share name")
		}
		return "", "", invalid(filter, "[MQTT-4.8.2-2]", "shared subscription has no topic filter")
	}
	group, topicFilter = rest[:i], rest[i+1:]
	if group == "" {
		return "", "", invalid(filter, "[MQTT-4.8.2-1]", "shared subscription has no share name")
	}
	if strings.ContainsAny(group, "+#") {
		return "", "", invalid(filter, "[MQTT-4.8.2-1]", "share name contains a wildcard character")
	}
	if topicFilter == "" {
		return "", "", invalid(filter, "[MQTT-4.8.2-2]", "shared subscription has no topic filter")
	}
	if err := checkString(filter, "shared subscription"); err != nil {
		return "", "", err
	}
	if err := validatePlain(topicFilter, filter); err != nil {
		return "", "", err
	}
	return group, topicFilter, nil
}

// Match reports whether the topic filter matches the topic name. '+' matches exactly one level
// (possibly empty), '#' matches the parent level and any number of levels below it
// ("sport/#" matches "sport"). Filters starting with '#' or '+' do not match names starting with
// '$' [MQTT-4.7.2-1]. Match expects valid inputs and does not allocate; a shared subscription
// must be split with ParseShared first (Match treats "$share/..." literally).
func Match(filter, name string) bool {
	if name != "" && name[0] == '$' && filter != "" && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		i := strings.IndexByte(filter, '/')
		fl := filter
		if i >= 0 {
			fl = filter[:i]
		}
		if fl == "#" {
			return true
		}
		j := strings.IndexByte(name, '/')
		nl := name
		if j >= 0 {
			nl = name[:j]
		}
		if fl != "+" && fl != nl {
			return false
		}
		switch {
		case i < 0 && j < 0:
			return true
		case j < 0:
			// The name ends here: only a trailing "/#" still matches (the parent level).
			return filter[i+1:] == "#"
		case i < 0:
			return false
		}
		filter, name = filter[i+1:], name[j+1:]
	}
}
