//go:build !linux

package cli

import (
	"errors"
	"os"
)

// disableEcho is only implemented on Linux; elsewhere the passphrase is echoed, so prefer
// --passphrase-file or --passphrase-env there.
func disableEcho(*os.File) (func(), error) { return nil, errors.New("echo control not supported") }
