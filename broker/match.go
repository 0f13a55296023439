package broker

import "strings"

// matchTopic reports whether the topic name matches filter by MQTT rules: "+" matches one level,
// a trailing "#" the parent and any number of levels [MQTT-4.7.1-2] [MQTT-4.7.1-3], and wildcards
// at the first level do not match topics starting with "$" [MQTT-4.7.2-1].
func matchTopic(filter, topic string) bool {
	return covers(filter, topic)
}

// covers reports whether every topic matched by filter req is also matched by filter allowed, so
// that a subscription to req can be granted under a rule for allowed. A topic name is a filter
// without wildcards, so covers(f, topic) is topic matching.
func covers(allowed, req string) bool {
	if strings.HasPrefix(req, "$share/") {
		// A shared subscription is authorized on its topic filter: $share/{ShareName}/{filter}.
		if parts := strings.SplitN(req, "/", 3); len(parts) == 3 {
			req = parts[2]
		}
	}
	a := strings.Split(allowed, "/")
	r := strings.Split(req, "/")
	if strings.HasPrefix(r[0], "$") && (a[0] == "+" || a[0] == "#") {
		return false // [MQTT-4.7.2-1]
	}
	for i, al := range a {
		if al == "#" {
			return true // also matches the parent level: "a/#" covers "a"
		}
		if i >= len(r) {
			return false
		}
		rl := r[i]
		switch {
		case rl == "#":
			return false // req reaches deeper than allowed
		case al == "+":
			continue
		case rl == "+":
			return false // req has a wildcard where allowed needs a literal level
		case al != rl:
			return false
		}
	}
	return len(a) == len(r)
}

// validFilter checks the wildcard placement rules of a topic filter [MQTT-4.7.1-2] [MQTT-4.7.1-3].
func validFilter(f string) bool {
	if f == "" {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return false
		}
		if strings.Contains(l, "+") && l != "+" {
			return false
		}
	}
	return true
}
