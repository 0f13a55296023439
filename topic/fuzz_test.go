package topic_test

import (
	"strings"
	"testing"

	"github.com/fennec-mqtt/fennec/topic"
)

// refMatch is a plain level-by-level reading of MQTT 4.7, used to check Match.
func refMatch(filter, name string) bool {
	if strings.HasPrefix(name, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	fs, ns := strings.Split(filter, "/"), strings.Split(name, "/")
	for i, f := range fs {
		if f == "#" {
			return true
		}
		if i >= len(ns) {
			return false
		}
		if f != "+" && f != ns[i] {
			return false
		}
	}
	return len(fs) == len(ns)
}

// FuzzMatch compares Match with the reference on every valid filter and name.
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"sport/#", "sport"}, {"sport/+", "sport/"}, {"+/+", "/finance"}, {"#", "$SYS/x"},
		{"$SYS/#", "$SYS"}, {"a/+/c", "a//c"}, {"+", "/"}, {"a/b", "a/b/c"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, name string) {
		if topic.ValidateFilter(filter) != nil || topic.ValidateName(name) != nil || topic.IsShared(filter) {
			return
		}
		if got, want := topic.Match(filter, name), refMatch(filter, name); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", filter, name, got, want)
		}
	})
}
