package brokercmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
