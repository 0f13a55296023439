package brokercmd

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fennec-mqtt/fennec/broker"
)

func TestParseJobFlag(t *testing.T) {
	doc := filepath.Join(t.TempDir(), "job.json")
	if err := os.WriteFile(doc, []byte(`{"operation":"x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := parseJobFlag("fw-1=" + doc + ":dev1,dev2")
	if err != nil || j.ID != "fw-1" || string(j.Document) != `{"operation":"x"}` || strings.Join(j.Things, " ") != "dev1 dev2" {
		t.Fatalf("%+v %v", j, err)
	}
	for _, bad := range []string{"fw-1", "=" + doc + ":dev1", "fw-1=" + doc, "fw-1=" + doc + ":", "fw-1=/nonexistent.json:dev1"} {
		if _, err := parseJobFlag(bad); err == nil {
			t.Errorf("%q taken", bad)
		}
	}
}

func TestParseTemplateFlag(t *testing.T) {
	tp, err := parseTemplateFlag("fleet=sensor-{SerialNumber}-{Site}")
	if err != nil || tp.Name != "fleet" || tp.ThingName != "sensor-{SerialNumber}-{Site}" || strings.Join(tp.Parameters, ",") != "SerialNumber,Site" {
		t.Fatalf("%+v %v", tp, err)
	}
	for _, bad := range []string{"fleet", "=x", "fleet="} {
		if _, err := parseTemplateFlag(bad); err == nil {
			t.Errorf("%q taken", bad)
		}
	}
}

// The banner says what each listener asks of a client: TLS version, client certificate, and in
// the AWS IoT emulation a registered device certificate, also for plain listeners that refuse.
func TestListenerDescription(t *testing.T) {
	mtls := &broker.TLS{MinVersion: tls.VersionTLS13, RequireClientCert: true}
	for _, c := range []struct {
		scheme string
		o      brokerOptions
		t      *broker.TLS
		want   string
	}{
		{"tls", brokerOptions{}, mtls, "TLS 1.3, client certificate required"},
		{"wss", brokerOptions{}, &broker.TLS{MinVersion: tls.VersionTLS12}, "TLS 1.2 or 1.3"},
		{"tls", brokerOptions{aws: true}, mtls, "TLS 1.3, registered device certificate required (AWS IoT emulation)"},
		{"tcp", brokerOptions{}, mtls, "no TLS"},
		{"ws", brokerOptions{aws: true}, mtls, "no TLS (AWS IoT emulation refuses clients without certificate)"},
	} {
		if got := listenerDescription(c.scheme, &c.o, c.t); got != c.want {
			t.Errorf("%s aws=%v: %q, want %q", c.scheme, c.o.aws, got, c.want)
		}
	}
}
