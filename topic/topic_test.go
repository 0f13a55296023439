package topic_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/fennec-mqtt/fennec/topic"
)

func TestMatch(t *testing.T) {
	// Examples of MQTT 3.1.1 / 5.0 section 4.7.1 and 4.7.2.
	tests := []struct {
		filter, name string
		want         bool
	}{
		{"sport/tennis/player1/#", "sport/tennis/player1", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
		{"sport/#", "sport", true},
		{"#", "sport/tennis", true},
		{"#", "/", true},
		{"sport/tennis/+", "sport/tennis/player1", true},
		{"sport/tennis/+", "sport/tennis/player2", true},
		{"sport/tennis/+", "sport/tennis/player1/ranking", false},
		{"sport/+", "sport", false},
		{"sport/+", "sport/", true},
		{"+/+", "/finance", true},
		{"/+", "/finance", true},
		{"+", "/finance", false},
		{"+/tennis/#", "sport/tennis/x", true},
		{"+/tennis/#", "sport/tennis", true},
		{"sport", "sport", true},
		{"sport", "Sport", false},
		{"sport", "sport/", false},
		{"sport/", "sport", false},
		{"a/b/c", "a/b", false},
		{"a/b", "a/b/c", false},
		{"+/+/+", "a/b/c", true},
		{"+/+", "a/b/c", false},
		{"a//c", "a//c", true},
		{"a/+/c", "a//c", true},
		// [MQTT-4.7.2-1]: $-topics are not matched by a leading wildcard.
		{"#", "$SYS/broker/load", false},
		{"+/monitor/Clients", "$SYS/monitor/Clients", false},
		{"$SYS/#", "$SYS/monitor/Clients", true},
		{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
		{"$SYS/#", "$SYS", true},
		{"a/#", "a/$b", true},
	}
	for _, tt := range tests {
		if got := topic.Match(tt.filter, tt.name); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.filter, tt.name, got, tt.want)
		}
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		rule string // "" valid, "-" invalid without rule
	}{
		{"a/b", ""},
		{"/", ""},
		{"$SYS/x", ""},
		{"a b/ü/€", ""},
		{strings.Repeat("a", 65535), ""},
		{"", "[MQTT-4.7.3-1]"},
		{strings.Repeat("a", 65536), "-"},
		{"a/\x00", "[MQTT-4.7.3-2]"},
		{"a/\xff", "[MQTT-1.5.3-1]"},
		{"a/\xed\xa0\x80", "[MQTT-1.5.3-1]"}, // UTF-16 surrogate
		{"a/+", "[MQTT-3.3.2-2]"},
		{"a/#", "[MQTT-3.3.2-2]"},
		{"a+b", "[MQTT-3.3.2-2]"},
	}
	for _, tt := range tests {
		checkErr(t, "ValidateName", tt.name, topic.ValidateName(tt.name), tt.rule)
	}
}

func checkErr(t *testing.T, fn, in string, err error, rule string) {
	t.Helper()
	short := in
	if len(short) > 20 {
		short = short[:20] + "..."
	}
	if rule == "" {
		if err != nil {
			t.Errorf("%s(%q) = %v, want nil", fn, short, err)
		}
		return
	}
	var e *topic.Error
	if !errors.As(err, &e) || !errors.Is(err, topic.ErrInvalid) {
		t.Errorf("%s(%q) = %v, want *topic.Error", fn, short, err)
		return
	}
	if rule != "-" && e.Rule != rule {
		t.Errorf("%s(%q) rule = %q, want %q (%v)", fn, short, e.Rule, rule, err)
	}
}

func TestValidateFilter(t *testing.T) {
	tests := []struct {
		filter, rule string
	}{
		{"sport/tennis/player1/#", ""},
		{"sport/#", ""},
		{"#", ""},
		{"+", ""},
		{"+/tennis/#", ""},
		{"sport/+/player1", ""},
		{"/+", ""},
		{"+/+", ""},
		{"$SYS/#", ""},
		{"$share/g/a/#", ""},
		{"$share/g/#", ""},
		{"$sharex/a", ""},
		{"", "[MQTT-4.7.3-1]"},
		{"sport/tennis#", "[MQTT-4.7.1-2]"},
		{"sport/tennis/#/ranking", "[MQTT-4.7.1-2]"},
		{"##", "[MQTT-4.7.1-2]"},
		{"sport+", "[MQTT-4.7.1-3]"},
		{"+sport", "[MQTT-4.7.1-3]"},
		{"a/++/b", "[MQTT-4.7.1-3]"},
		{"a/\x00", "[MQTT-4.7.3-2]"},
		{"a/\xc0\x80", "[MQTT-1.5.3-1]"}, // overlong NUL
		{"$share/", "[MQTT-4.8.2-1]"},
		{"$share//a", "[MQTT-4.8.2-1]"},
		{"$share/g+/a", "[MQTT-4.8.2-1]"},
		{"$share/#/a", "[MQTT-4.8.2-1]"},
		{"$share/g", "[MQTT-4.8.2-2]"},
		{"$share/g/", "[MQTT-4.8.2-2]"},
		{"$share/g/a#", "[MQTT-4.7.1-2]"},
	}
	for _, tt := range tests {
		checkErr(t, "ValidateFilter", tt.filter, topic.ValidateFilter(tt.filter), tt.rule)
	}
}

func TestParseShared(t *testing.T) {
	tests := []struct {
		in, group, filter string
		ok                bool
	}{
		{"$share/consumer1/sport/tennis/+", "consumer1", "sport/tennis/+", true},
		{"$share/consumer2/sport/tennis/+", "consumer2", "sport/tennis/+", true},
		{"$share/g//a", "g", "/a", true},
		{"$share/g/#", "g", "#", true},
		{"sport/tennis", "", "sport/tennis", true},
		{"$SYS/#", "", "$SYS/#", true},
		{"$share/g", "", "", false},
		{"$share//x", "", "", false},
		{"$share/a+b/x", "", "", false},
		{"$share/g/x+", "", "", false},
	}
	for _, tt := range tests {
		g, f, err := topic.ParseShared(tt.in)
		if (err == nil) != tt.ok || g != tt.group || f != tt.filter {
			t.Errorf("ParseShared(%q) = %q, %q, %v; want %q, %q, ok=%v", tt.in, g, f, err, tt.group, tt.filter, tt.ok)
		}
	}
}

func TestMatchNoAlloc(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		topic.Match("a/+/c/#", "a/b/c/d/e")
	})
	if n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
}
