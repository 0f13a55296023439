package archtest

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every reference to a normative statement of the MQTT specifications, in code and docs, has
// the form of a statement ID, [MQTT-x.y.z-n]; a section is cited as "section x.y.z" instead.
// (MQTT-3-8.3-4 and MQTT-4.3.3-? in brackets were in the code; a test asserted the first.)
func TestSpecReferences(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ref := regexp.MustCompile(`\[MQTT-[0-9][^\]\n]*\]`)
	good := regexp.MustCompile(`^\[MQTT-[0-9]+(\.[0-9]+)*-[0-9]+\]$`)
	n := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name != "." && (strings.HasPrefix(name, ".") || name == "node_modules" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(path); ext != ".go" && ext != ".md" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range ref.FindAll(b, -1) {
			n++
			if !good.Match(m) {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s: %s is not a statement ID [MQTT-x.y.z-n]", rel, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 100 {
		t.Fatalf("only %d references found: the walk missed the sources", n)
	}
}
