package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/awsiot"
)

// The firmware job end to end against the emulation: a signed image is downloaded in blocks,
// verified and installed, and the job SUCCEEDED; an image changed along with its digest, but not
// its signature, is refused, not installed, and the job FAILED with the reason.
func TestFirmwareJob(t *testing.T) {
	for _, tamper := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out := filepath.Join(t.TempDir(), "firmware.bin")
		var w bytes.Buffer
		status, err := run(ctx, &w, options{cfg: awsiot.Config{ThingName: "dev1"}, out: out, emulate: true, tamper: tamper, wait: 10 * time.Second})
		cancel()
		if err != nil {
			t.Fatalf("tamper %v: %v\n%s", tamper, err, w.String())
		}
		fi, statErr := os.Stat(out)
		if !tamper && (status != awsiot.StatusSucceeded || statErr != nil || fi.Size() != 100*1024+123 || !strings.Contains(w.String(), "signature verified")) {
			t.Fatalf("signed image: %s %v\n%s", status, statErr, w.String())
		}
		if tamper && (status != awsiot.StatusFailed || statErr == nil || !strings.Contains(w.String(), "signature check failed")) {
			t.Fatalf("tampered image: %s, installed: %v\n%s", status, statErr == nil, w.String())
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".firmware-*")); len(left) != 0 {
			t.Fatalf("temporary files left: %v", left)
		}
	}
}
