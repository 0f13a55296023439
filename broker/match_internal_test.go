package broker

import "testing"

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		allowed, req string
		want         bool
	}{
		{"#", "a/b", true},
		{"#", "$SYS/x", false}, // [MQTT-4.7.2-1]
		{"a/#", "a", true},
		{"a/#", "a/b/#", true},
		{"a/+", "a/b", true},
		{"a/+", "a/+", true},
		{"a/+", "a/#", false},
		{"a/b", "a/+", false},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b/d", false},
		{"a/b", "a/b/c", false},
		{"+/b", "$x/b", false},
		{"s/#", "$share/g/s/x", true},
	} {
		if got := covers(tc.allowed, tc.req); got != tc.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.allowed, tc.req, got, tc.want)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true},
		{"arn:*:topic/a/*", "arn:x:topic/a/b/c", true},
		{"topic/a/?", "topic/a/bc", false},
		{"topic/a/??", "topic/a/bc", true},
		{"topic/a/#", "topic/a/b", false}, // MQTT wildcards are literal in policies
		{"topic/a/#", "topic/a/#", true},
		{"*b*d", "abcd", true},
		{"*b*d", "abce", false},
	} {
		if got := glob(tc.p, tc.s); got != tc.want {
			t.Errorf("glob(%q, %q) = %v, want %v", tc.p, tc.s, got, tc.want)
		}
	}
}
