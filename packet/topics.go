package packet

import "strings"

// checkTopicName applies the wire rules for a topic name (UTF-8 already checked): no wildcard
// characters [MQTT-3.3.2-2].
func checkTopicName(t Type, v Version, what, s string) *Error {
	if strings.ContainsAny(s, "+#") {
		return malformed(t, "[MQTT-3.3.2-2]", what+" must not contain wildcard characters")
	}
	return nil
}

// checkFilter applies the wire rules for a topic filter (UTF-8 already checked): at least one
// character [MQTT-4.7.3-1], '#' alone and last [MQTT-4.7.1-2], '+' a whole level [MQTT-4.7.1-3]
// (MQTT 5 numbers them 4.7.1-1 and 4.7.1-2), and in MQTT 5 the $share form [MQTT-4.8.2-1]
// [MQTT-4.8.2-2].
func checkFilter(t Type, v Version, s string) *Error {
	if s == "" {
		return malformed(t, "[MQTT-4.7.3-1]", "topic filter is empty")
	}
	if v == V5 && strings.HasPrefix(s, "$share/") {
		rest := s[len("$share/"):]
		i := strings.IndexByte(rest, '/')
		if i < 0 && rest != "" {
			return protoErr(t, "[MQTT-4.8.2-2]", "shared subscription "+quote(s)+" has no topic filter")
		}
		if i <= 0 || strings.ContainsAny(rest[:i], "+#") {
			return protoErr(t, "[MQTT-4.8.2-1]", "shared subscription "+quote(s)+" needs a share name without wildcards")
		}
		if i == len(rest)-1 {
			return protoErr(t, "[MQTT-4.8.2-2]", "shared subscription "+quote(s)+" has no topic filter")
		}
		s = rest[i+1:]
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '#':
			if (i > 0 && s[i-1] != '/') || i != len(s)-1 {
				return malformed(t, rule(v, "[MQTT-4.7.1-2]", "[MQTT-4.7.1-1]"),
					"topic filter "+quote(s)+": '#' must be a whole level and the last character")
			}
		case '+':
			if (i > 0 && s[i-1] != '/') || (i < len(s)-1 && s[i+1] != '/') {
				return malformed(t, rule(v, "[MQTT-4.7.1-3]", "[MQTT-4.7.1-2]"),
					"topic filter "+quote(s)+": '+' must occupy a whole level")
			}
		}
	}
	return nil
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return "\"" + s + "\""
}
