package cmdutil

import (
	"fmt"
	"regexp"
)

// mosquittoFlags are flags of mosquitto_pub and mosquitto_sub that fennec does not have, with
// what to use instead: a mosquitto user's muscle memory gets an answer, not "unknown flag".
var mosquittoFlags = map[string]string{
	"A":                     "-A (bind to a local address) is not supported: fennec lets the system choose the source address",
	"bind-address":          "--bind-address is not supported: fennec lets the system choose the source address",
	"M":                     "-M (maximum in-flight messages) is not needed: fennec sizes its window from the broker's Receive Maximum (library: Config.MaxInflight)",
	"unix":                  "--unix (a Unix socket) is not supported: connect over TCP (mqtt://) or TLS (mqtts://)",
	"ciphers":               "--ciphers is not supported: Go's TLS chooses among secure cipher suites; choose the version with --tls-version",
	"psk":                   "--psk is not supported: Go's TLS has no pre-shared keys; use certificates (--cafile, --cert, --key)",
	"psk-identity":          "--psk-identity is not supported: Go's TLS has no pre-shared keys; use certificates (--cafile, --cert, --key)",
	"proxy":                 "--proxy is not supported: fennec connects directly",
	"keyform":               "--keyform is not needed: fennec reads PEM, DER and firmware C arrays by their content",
	"tls-engine":            "--tls-engine is not supported: keys are read from files (PEM, DER or C arrays)",
	"tls-engine-kpass-sha1": "--tls-engine-kpass-sha1 is not supported: keys are read from files; an encrypted key's passphrase comes from FENNEC_KEY_PASSPHRASE",
	"tls-keylog":            "use --keylog FILE (or --pcap FILE for a capture with the keys inside)",
	"pretty":                "--pretty is not supported: use --json for machine-readable output, or -F with %J",
	"o":                     "-o (options file) is not supported: put the settings in a profile (fennec help profiles) and use --profile NAME",
}

var unknownFlag = regexp.MustCompile(`unknown (?:shorthand )?flag: (?:'(.)' in -.*|--([a-zA-Z0-9-]+))`)

// FlagError explains an unknown flag that is a mosquitto flag.
func FlagError(err error) error {
	if m := unknownFlag.FindStringSubmatch(err.Error()); m != nil {
		name := m[1] + m[2]
		if hint := mosquittoFlags[name]; hint != "" {
			return UsageError{fmt.Errorf("%s", hint)}
		}
	}
	return UsageError{err}
}
