package cli_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The C form must compile, and its sizeof_ constant must be the DER length: compiled with the
// system C compiler, the program prints the array back as bytes.
func TestCertConvertCCompiles(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler")
	}
	dir, p := certPKI(t)
	header := filepath.Join(dir, "certs_test.h")
	if r := runCert(t, "", "cert", "convert", "--to", "c", filepath.Join(dir, "ca.pem"), "--name", "ca_cert_der", "-o", header); r.code != 0 {
		t.Fatal(r.all())
	}
	src := filepath.Join(dir, "main.c")
	os.WriteFile(src, []byte(`#include <stdio.h>
#include "certs_test.h"
int main(void) {
	fwrite(ca_cert_der, 1, sizeof_ca_cert_der, stdout);
	fprintf(stderr, "%d", sizeof_ca_cert_der);
	return 0;
}
`), 0o644)
	bin := filepath.Join(dir, "main")
	if out, err := exec.Command(cc, "-Wall", "-Werror", "-Wno-unused-const-variable", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stdout.Bytes(), p.CA.Cert.Raw) || stderr.String() != strconv.Itoa(len(p.CA.Cert.Raw)) {
		t.Fatalf("compiled array differs from the DER (sizeof_ %s, want %d)", stderr.String(), len(p.CA.Cert.Raw))
	}
}

// OpenSSL, an independent implementation, accepts what fennec cert gen and convert write.
func TestCertOpenSSLAgrees(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	dir, _ := certPKI(t, "--host", "broker.local")
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(openssl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	ca := filepath.Join(dir, "ca.pem")
	if out := run("verify", "-CAfile", ca, "-purpose", "sslserver", filepath.Join(dir, "server.pem")); !strings.Contains(out, ": OK") {
		t.Fatalf("server: %s", out)
	}
	if out := run("verify", "-CAfile", ca, "-purpose", "sslclient", filepath.Join(dir, "fennec-client.pem")); !strings.Contains(out, ": OK") {
		t.Fatalf("client: %s", out)
	}
	der := filepath.Join(dir, "server.der")
	if r := runCert(t, "", "cert", "convert", "--to", "der", filepath.Join(dir, "server.pem"), "-o", der); r.code != 0 {
		t.Fatal(r.all())
	}
	if out := run("x509", "-inform", "DER", "-in", der, "-noout", "-ext", "subjectAltName"); !strings.Contains(out, "DNS:broker.local") {
		t.Fatalf("DER: %s", out)
	}
	// A key converted to DER is a key OpenSSL reads.
	keyDER := filepath.Join(dir, "key.der")
	if r := runCert(t, "", "cert", "convert", "--to", "der", filepath.Join(dir, "server-key.pem"), "-o", keyDER); r.code != 0 {
		t.Fatal(r.all())
	}
	run("pkey", "-inform", "DER", "-in", keyDER, "-noout")
}
