package broker

import (
	"strings"

	"github.com/fennec-mqtt/fennec/topic"
)

// covers reports whether every topic matched by filter req is also matched by filter allowed, so
// that a subscription to req can be granted under a rule for allowed. A topic name is a filter
// without wildcards, so covers(f, topic) is topic matching.
func covers(allowed, req string) bool {
	// A shared subscription is authorized on its topic filter: $share/{ShareName}/{filter}.
	if _, f, err := topic.ParseShared(req); err == nil {
		req = f
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
