package certcheck_test

import (
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/fennec-mqtt/fennec/internal/tlstest"
	"github.com/fennec-mqtt/fennec/pki"
	"github.com/fennec-mqtt/fennec/pki/certcheck"
)

// A header whose "cert" array holds the key and whose "key" array holds the certificate was
// reported "all well": the key matches the certificate, only the names are swapped.
func TestCheckArrayNamesAgainstContent(t *testing.T) {
	f := tlstest.Get(t)
	k, _ := pem.Decode(f.Client.KeyPEM)
	swapped := append(pki.EncodeC("client_cert_der", k.Bytes), pki.EncodeC("client_key_der", f.Client.Cert.Raw)...)
	objs, err := pki.BytesSource(swapped, "certs_test.h").Parse(pki.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := certcheck.Check(objs, certcheck.CheckOptions{})
	if r.OK {
		t.Fatalf("swapped arrays reported OK: %+v", r)
	}
	for _, o := range r.Objects {
		var nm *certcheck.NameMismatchError
		if o.OK || !errors.As(o.Err, &nm) || nm.Name != o.Name {
			t.Fatalf("%s: %+v", o.Name, o)
		}
	}
	if !strings.Contains(strings.Join(r.Notes, " "), "swapped") {
		t.Fatalf("notes %v", r.Notes)
	}

	right := append(pki.EncodeC("client_cert_der", f.Client.Cert.Raw), pki.EncodeC("client_key_der", k.Bytes)...)
	objs, _ = pki.BytesSource(right, "certs_test.h").Parse(pki.ParseOptions{})
	if r := certcheck.Check(objs, certcheck.CheckOptions{}); !r.OK {
		t.Fatalf("right names: %+v", r)
	}
}

// PEM in C string literals without "\n": the literals concatenate into one line that firmware
// PEM parsers reject. It read as "a PEM block is damaged".
func TestCheckPEMStringWithoutNewlines(t *testing.T) {
	f := tlstest.Get(t)
	lines := strings.Split(strings.TrimSpace(string(f.Client.CertPEM)), "\n")
	var b strings.Builder
	b.WriteString("static const char client_cert_pem[] =\n")
	for _, l := range lines {
		b.WriteString("    \"" + l + "\"\n")
	}
	b.WriteString(";\n")
	objs, _ := pki.BytesSource([]byte(b.String()), "certs_test.h").Parse(pki.ParseOptions{})
	var ne *pki.PEMNoNewlineError
	if len(objs) != 1 || !errors.As(objs[0].Err, &ne) || ne.Name != "client_cert_pem" {
		t.Fatalf("%+v", objs)
	}
	if r := certcheck.Check(objs, certcheck.CheckOptions{}); r.OK {
		t.Fatal("reported OK")
	}
}

// Bare base64 loads in fennec but not in firmware: cert check says so.
func TestCheckUnarmouredBase64(t *testing.T) {
	f := tlstest.Get(t)
	lines := strings.Split(strings.TrimSpace(string(f.Client.CertPEM)), "\n")
	b64 := strings.Join(lines[1:len(lines)-1], "") + "\n"
	objs, _ := pki.BytesSource([]byte(b64), "cert.b64").Parse(pki.ParseOptions{})
	r := certcheck.Check(objs, certcheck.CheckOptions{})
	var ue *pki.UnarmouredBase64Error
	if r.OK || len(r.Objects) != 1 || !errors.As(r.Objects[0].Err, &ue) {
		t.Fatalf("%+v", r)
	}
}
