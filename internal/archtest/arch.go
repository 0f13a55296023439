package archtest

import (
	"fmt"
	"sort"
	"strings"
)

// Module is the module path of the project.
const Module = "github.com/fennec-mqtt/fennec"

// Allowed maps a package (relative to the module; "." is the root package) to the project
// packages it may import directly. Packages marked stdlibOnly may import nothing outside the
// standard library. A package missing from the map is an error: a new package must take its
// place in the layering on purpose.
var Allowed = map[string][]string{
	"packet":            {},
	"topic":             {},
	"pki":               {},
	"pki/devpki":        {"pki"},
	"pki/certcheck":     {"pki"},
	"session":           {"packet", "topic"},
	"session/filestore": {"session"},
	"session/storetest": {"session"},
	"mqttconn":          {"session", "packet", "topic", "internal/connfast"},
	".":                 {"mqttconn", "session", "packet", "topic", "pki", "internal/connfast"},
	"internal/connfast": {"packet"},
	"awsiot":            {".", "pki", "packet", "topic"},
	"diagnose":          {".", "mqttconn", "pki", "packet", "topic", "awsiot"},
	"broker":            {"pki", "pki/devpki", "topic", "packet"},
	"broker/brokertest": {"broker", "pki", "pki/devpki"},
	"bench":             {".", "packet", "topic", "pki", "broker"},
	// The CLI: the root command imports each command's package; commands share cmdutil and
	// never import one another.
	"internal/cli":              {"internal/cli/cmdutil", "internal/cli/benchcmd", "internal/cli/brokercmd", "internal/cli/certcmd", "internal/cli/democmd", "internal/cli/doctorcmd", "internal/cli/jobscmd", "internal/cli/provisioncmd", "internal/cli/pubcmd", "internal/cli/shadowcmd", "internal/cli/subcmd"},
	"internal/cli/cmdutil":      cliLibs,
	"internal/cli/benchcmd":     cliCommand,
	"internal/cli/brokercmd":    cliCommand,
	"internal/cli/certcmd":      cliCommand,
	"internal/cli/democmd":      cliCommand,
	"internal/cli/doctorcmd":    cliCommand,
	"internal/cli/jobscmd":      cliCommand,
	"internal/cli/provisioncmd": cliCommand,
	"internal/cli/pubcmd":       cliCommand,
	"internal/cli/shadowcmd":    cliCommand,
	"internal/cli/subcmd":       cliCommand,
	"cmd/fennec":                {"internal/cli"},
	"internal/archtest":         {},
	"internal/mosquittotest":    {},
	"internal/faultproxy":       {},
	"internal/tlstest":          {"pki", "pki/devpki", "internal/mosquittotest"},
	"capture":                   {},
	// Examples use the public API as a user would, the emulation included.
	"examples/awsiot/emu":      {"awsiot", "broker", "pki", "pki/devpki"},
	"examples/awsiot":          {"awsiot", "pki", "broker", "examples/awsiot/emu"},
	"examples/awsiot/firmware": {"awsiot", "pki", "broker", "examples/awsiot/emu"},
}

// cliLibs are the library packages the CLI builds on; cliCommand adds the shared CLI package.
var (
	cliLibs    = []string{".", "awsiot", "bench", "broker", "capture", "diagnose", "packet", "pki", "pki/certcheck", "pki/devpki", "topic"}
	cliCommand = append([]string{"internal/cli/cmdutil"}, cliLibs...)
)

// StdlibOnly lists the packages that may not import anything outside the standard library.
var StdlibOnly = map[string]bool{"packet": true, "topic": true, "pki": true}

// Package is one package and its direct (non-test) imports, as `go list` reports them.
type Package struct {
	ImportPath string
	Imports    []string
}

// Check returns one message per import that breaks the layering.
func Check(pkgs []Package) []string {
	var bad []string
	for _, p := range pkgs {
		self := rel(p.ImportPath)
		if self == "" {
			continue // not ours
		}
		allowed, ok := Allowed[self]
		if !ok {
			bad = append(bad, fmt.Sprintf("%s: package has no place in the layering (add it to archtest.Allowed)", self))
			continue
		}
		set := map[string]bool{}
		for _, a := range allowed {
			set[a] = true
		}
		for _, imp := range p.Imports {
			if r := rel(imp); r != "" {
				if !set["*"] && !set[r] {
					bad = append(bad, fmt.Sprintf("%s imports %s, which the layering does not allow", self, r))
				}
				continue
			}
			if StdlibOnly[self] && !isStdlib(imp) {
				bad = append(bad, fmt.Sprintf("%s imports %s, but it may use the standard library only", self, imp))
			}
		}
	}
	sort.Strings(bad)
	return bad
}

func rel(importPath string) string {
	switch {
	case importPath == Module:
		return "."
	case strings.HasPrefix(importPath, Module+"/"):
		return strings.TrimPrefix(importPath, Module+"/")
	}
	return ""
}

func isStdlib(importPath string) bool {
	first, _, _ := strings.Cut(importPath, "/")
	return !strings.Contains(first, ".")
}
