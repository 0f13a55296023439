package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/awsiot"
)

// The example's round trip against the emulation: connect with the device certificate,
// subscribe to the delta, report, receive the desired change, report it, end in sync.
func TestExampleEmulated(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var w bytes.Buffer
	if err := run(ctx, &w, true, awsiot.Config{ThingName: "dev1"}, 10*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, w.String())
	}
	for _, want := range []string{"connected   as dev1", "subscribed  $aws/things/dev1/shadow/update/delta", `delta       {"led":"on"}`, "in sync"} {
		if !strings.Contains(w.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, w.String())
		}
	}
}
