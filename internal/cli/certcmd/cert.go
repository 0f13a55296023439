package certcmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
	"github.com/fennec-mqtt/fennec/pki"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// New is `fennec cert`: inspect, check, convert, generate and verify certificates and
// keys, whatever form they come in.
func New(streams cmdutil.IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "Inspect, check, convert, generate and verify certificates and keys",
		Long: `fennec cert works on certificates and keys in any form, recognised by content, not by file name:
PEM (one or many blocks), DER, base64 without armour, C headers in the style of wolfSSL's
certs_test.h (unsigned char arrays with sizeof_ constants, or PEM in string literals), and Go
byte slices. Keys may be PKCS#8, PKCS#1, SEC1 or encrypted PKCS#8 (PBES2).

Every problem is named precisely: a "DER" array that holds PEM text (wolfSSL -140,
ASN_PARSE_E), DER cut short, a key where a certificate belongs, a key that does not match its
certificate, an expired certificate or an unset device clock, a certificate not issued by the CA.

Passphrases of encrypted keys are read from --passphrase-file, the variable named by
--passphrase-env (default FENNEC_KEY_PASSPHRASE), or asked for on the terminal; never from a
command-line value, which every user of the machine can see in the process list.`,
		Example: `  fennec cert inspect ca.pem client.crt               # what is in these files
  fennec cert check certs_test.h                      # is this header usable as it is?
  fennec cert check client.pem client-key.pem --ca AmazonRootCA1.pem
  fennec cert convert --to c ca.pem --name ca_cert_der # a certs_test.h array
  fennec cert gen --out ./pki --host broker.local     # a development CA, server and client
  fennec cert verify --ca ca.pem --cert client.pem --key client-key.pem`,
	}
	cmd.AddCommand(newCertInspectCmd(streams), newCertCheckCmd(streams), newCertConvertCmd(streams),
		newCertGenCmd(streams), newCertVerifyCmd(streams))
	return cmd
}

// passFlags are the passphrase sources for encrypted keys.
type passFlags struct {
	file string
	env  string
}

func (p *passFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&p.file, "passphrase-file", "", "read the passphrase of an encrypted key from the first line of `FILE`")
	cmd.Flags().StringVar(&p.env, "passphrase-env", "FENNEC_KEY_PASSPHRASE", "read the passphrase of an encrypted key from environment variable `VAR`")
}

// source returns the passphrase function: the file, else the variable when set, else a prompt
// on the terminal (or a line read from standard input when it is not a terminal).
func (p *passFlags) source(streams cmdutil.IO) pki.PassphraseFunc {
	if p.file != "" {
		return pki.PassphraseFromFile(p.file)
	}
	if _, ok := os.LookupEnv(p.env); ok && p.env != "" {
		return pki.PassphraseFromEnv(p.env)
	}
	var cached []byte
	return func(name string) ([]byte, error) {
		if cached != nil {
			return cached, nil
		}
		if streams.In == nil {
			return nil, pki.ErrNeedPassphrase
		}
		fmt.Fprintf(streams.Err, "Passphrase for %s: ", name)
		line, err := readSecretLine(streams.In)
		fmt.Fprintln(streams.Err)
		if err != nil && line == "" {
			return nil, pki.ErrNeedPassphrase
		}
		cached = []byte(line)
		return cached, nil
	}
}

// readSecretLine reads one line, without echo when in is a terminal.
func readSecretLine(in io.Reader) (string, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		b, err := term.ReadPassword(int(f.Fd()))
		return string(b), err
	}
	// Read byte by byte so that nothing after the line is consumed.
	var b strings.Builder
	one := make([]byte, 1)
	for {
		n, err := in.Read(one)
		if n == 1 {
			if one[0] == '\n' {
				return strings.TrimSuffix(b.String(), "\r"), nil
			}
			b.WriteByte(one[0])
		}
		if err != nil {
			return b.String(), err
		}
	}
}

// certError reports a pki error without its package prefix, with the pki hint.
func certError(err error) error {
	if err == nil {
		return nil
	}
	var ee *cmdutil.Failure
	if errors.As(err, &ee) {
		return err
	}
	return &cmdutil.Failure{Code: cmdutil.ExitError, Err: trimmedError{err}, Hint: pki.Hint(err)}
}

// trimmedError drops the "pki: " prefix from the message of the error it wraps.
type trimmedError struct{ err error }

func (e trimmedError) Error() string { return strings.TrimPrefix(e.err.Error(), "pki: ") }
func (e trimmedError) Unwrap() error { return e.err }

// parseCertFile reads and parses one file for the cert commands.
func parseCertFile(file string, pass pki.PassphraseFunc) ([]pki.Object, error) {
	var data []byte
	var err error
	if file == "-" {
		return nil, cmdutil.UsageErrorf("reading from standard input is not supported; give a file name")
	}
	data, err = os.ReadFile(file)
	if err != nil {
		return nil, &cmdutil.Failure{Code: cmdutil.ExitError, Err: err}
	}
	objs, err := pki.ParseWith(data, file, pki.ParseOptions{Passphrase: pass})
	if err != nil {
		return nil, certError(err)
	}
	return objs, nil
}
