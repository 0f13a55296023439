package archtest_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/fennec-mqtt/fennec/internal/archtest"
)

func TestLayering(t *testing.T) {
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", archtest.Module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []archtest.Package
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p archtest.Package
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	for _, msg := range archtest.Check(pkgs) {
		t.Error(msg)
	}
}

func TestCheckCatchesViolations(t *testing.T) {
	m := archtest.Module
	pkgs := []archtest.Package{
		{ImportPath: m + "/packet", Imports: []string{"bytes", "github.com/some/dep"}},
		{ImportPath: m + "/session", Imports: []string{m + "/packet", m}},
		{ImportPath: m + "/newpkg", Imports: nil},
		{ImportPath: m + "/internal/cli/pubcmd", Imports: []string{m, m + "/broker"}},
		{ImportPath: m + "/internal/cli/subcmd", Imports: []string{m + "/internal/cli/pubcmd"}},
	}
	got := archtest.Check(pkgs)
	want := []string{
		"internal/cli/subcmd imports internal/cli/pubcmd, which the layering does not allow",
		"newpkg: package has no place in the layering (add it to archtest.Allowed)",
		"packet imports github.com/some/dep, but it may use the standard library only",
		"session imports ., which the layering does not allow",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Check =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
