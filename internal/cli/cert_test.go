package cli_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fennec-mqtt/fennec/internal/cli"
	"github.com/fennec-mqtt/fennec/pki"
	"github.com/fennec-mqtt/fennec/pki/certcheck"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

type certRun struct {
	code          int
	stdout, stder string
}

func runCert(t *testing.T, stdin string, args ...string) certRun {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), args, cli.IO{In: strings.NewReader(stdin), Out: &out, Err: &errb})
	return certRun{code, out.String(), errb.String()}
}

func (r certRun) all() string { return r.stdout + r.stder }

func wantContains(t *testing.T, r certRun, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(r.all(), w) {
			t.Errorf("output lacks %q:\n%s", w, r.all())
		}
	}
}

// certPKI writes a development PKI into a temp dir with `fennec cert gen` itself.
func certPKI(t *testing.T, extra ...string) (dir string, p *devpki.PKI) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "pki")
	r := runCert(t, "", append([]string{"cert", "gen", "--out", dir}, extra...)...)
	if r.code != 0 {
		t.Fatalf("cert gen: %d\n%s", r.code, r.all())
	}
	p, _, err := devpki.LoadDir(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return dir, p
}

func TestCertGen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	r := runCert(t, "", "cert", "gen", "--out", dir, "--host", "broker.local", "--ip", "10.0.0.7", "--client", "sensor-1", "--client", "sensor-2", "--rsa")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.all())
	}
	wantContains(t, r, "RSA 2048", "broker.local, 10.0.0.7", "CN=sensor-2")
	for _, f := range []string{"ca-key.pem", "server-key.pem", "sensor-1-key.pem", "sensor-2-key.pem"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", f, st.Mode().Perm(), err)
		}
	}
	p, _, err := devpki.LoadDir(dir, []string{"sensor-1", "sensor-2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := certcheck.Verify(p.Server.Cert, certcheck.VerifyOptions{Roots: []*x509.Certificate{p.CA.Cert}, Host: "broker.local", Usage: certcheck.UsageServer}); err != nil {
		t.Fatal(err)
	}
	// Refuses to overwrite, exit 1 with a hint.
	r = runCert(t, "", "cert", "gen", "--out", dir)
	if r.code != 1 || !strings.Contains(r.stder, "--force") {
		t.Fatalf("overwrite: %d %s", r.code, r.all())
	}
	// --force rewrites the files, and keys that others could read become private again.
	if err := os.Chmod(filepath.Join(dir, "server-key.pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runCert(t, "", "cert", "gen", "--out", dir, "--force"); r.code != 0 {
		t.Fatalf("--force: %d %s", r.code, r.all())
	}
	if st, err := os.Stat(filepath.Join(dir, "server-key.pem")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("server-key.pem after --force: %v %v; want 0600", st.Mode().Perm(), err)
	}
	// Usage errors exit 2.
	if r := runCert(t, "", "cert", "gen", "--out", dir, "--rsa", "--ed25519"); r.code != 2 {
		t.Fatalf("--rsa --ed25519: %d %s", r.code, r.all())
	}
}

func TestCertInspect(t *testing.T) {
	dir, p := certPKI(t)
	r := runCert(t, "", "cert", "inspect", filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem"))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.all())
	}
	wantContains(t, r, "CN=Fennec Development CA", "DNS:localhost", "IP:127.0.0.1", "ECDSA P-256", "yes", "self-signed", pki.SPKIPin(p.Server.Cert))

	r = runCert(t, "", "cert", "inspect", "--json", filepath.Join(dir, "server.pem"))
	var files []struct {
		File    string
		Objects []struct {
			Kind        string
			Certificate *certcheck.CertInfo
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &files); err != nil {
		t.Fatalf("json: %v\n%s", err, r.stdout)
	}
	c := files[0].Objects[0].Certificate
	if files[0].Objects[0].Kind != "certificate" || c == nil || c.IsCA || c.DNSNames[0] != "localhost" || !c.NotAfter.Equal(p.Server.Cert.NotAfter) {
		t.Fatalf("json: %+v", files)
	}
	// A key file says which certificate it matches when both are in one file.
	combined := filepath.Join(dir, "combined.pem")
	os.WriteFile(combined, append(append([]byte{}, p.Client().CertPEM...), p.Client().KeyPEM...), 0o600)
	r = runCert(t, "", "cert", "inspect", combined)
	wantContains(t, r, "matches "+combined+"#1")
	// Unreadable input: exit 1.
	if r := runCert(t, "", "cert", "inspect", filepath.Join(dir, "missing.pem")); r.code != 1 {
		t.Fatalf("missing file: %d", r.code)
	}
}

// The seed's header: the CA "converted to DER" by pasting PEM text into the array, and a
// device certificate array cut short.
func TestCertCheckBrokenHeader(t *testing.T) {
	dir, p := certPKI(t)
	var h bytes.Buffer
	h.WriteString("/* certs_test.h, edited by hand */\n")
	h.Write(pki.EncodeC("ca_cert_der_2048", p.CA.CertPEM))
	der := p.Client().Cert.Raw
	h.Write(pki.EncodeC("client_cert_der_2048", der[:len(der)-37]))
	header := filepath.Join(dir, "certs_test.h")
	os.WriteFile(header, h.Bytes(), 0o644)

	r := runCert(t, "", "cert", "check", header)
	if r.code != 1 {
		t.Fatalf("exit %d; want 1\n%s", r.code, r.all())
	}
	wantContains(t, r,
		"FAIL ca_cert_der_2048", "actually holds PEM text", "-140",
		"FAIL client_cert_der_2048", "truncated", "declares "+strconv.Itoa(len(der))+" bytes but only "+strconv.Itoa(len(der)-37),
		"fennec cert convert --to c")

	// convert repairs the PEM-in-array: the result checks clean.
	fixed := filepath.Join(dir, "fixed.h")
	r = runCert(t, "", "cert", "convert", "--to", "c", filepath.Join(dir, "ca.pem"), "--name", "ca_cert_der_2048", "-o", fixed)
	if r.code != 0 {
		t.Fatalf("convert: %s", r.all())
	}
	r = runCert(t, "", "cert", "check", fixed)
	if r.code != 0 {
		t.Fatalf("fixed header: %d\n%s", r.code, r.all())
	}
	wantContains(t, r, "ok   ca_cert_der_2048", "all well")
	repaired := filepath.Join(dir, "repaired.h")
	broken := filepath.Join(dir, "broken.h")
	os.WriteFile(broken, pki.EncodeC("ca_cert_der_2048", p.CA.CertPEM), 0o644)
	if r := runCert(t, "", "cert", "convert", "--to", "c", broken, "-o", repaired); r.code != 0 {
		t.Fatalf("convert broken: %s", r.all())
	}
	got, _ := os.ReadFile(repaired)
	objs, err := pki.Parse(got, "repaired.h")
	if err != nil || objs[0].Err != nil || objs[0].Name != "ca_cert_der_2048" || !objs[0].Cert.Equal(p.CA.Cert) {
		t.Fatalf("repaired header: %+v %v", objs, err)
	}
}

func TestCertCheckGoodAndMismatched(t *testing.T) {
	dir, _ := certPKI(t)
	ca := filepath.Join(dir, "ca.pem")
	cert, key := filepath.Join(dir, "fennec-client.pem"), filepath.Join(dir, "fennec-client-key.pem")
	r := runCert(t, "", "cert", "check", cert, key, "--ca", ca)
	if r.code != 0 {
		t.Fatalf("good: %d\n%s", r.code, r.all())
	}
	wantContains(t, r, "matches certificate", "chains to CN=Fennec Development CA", "all well")

	// The server's key with the client's certificate.
	r = runCert(t, "", "cert", "check", cert, filepath.Join(dir, "server-key.pem"))
	if r.code != 1 {
		t.Fatalf("mismatch: %d\n%s", r.code, r.all())
	}
	wantContains(t, r, "does not match")

	// A CA file that is not a CA.
	r = runCert(t, "", "cert", "check", cert, "--ca", filepath.Join(dir, "server.pem"))
	if r.code != 1 {
		t.Fatalf("non-CA --ca: %d", r.code)
	}
	wantContains(t, r, "no CA certificate", "hint:")

	// Another CA.
	other := filepath.Join(t.TempDir(), "other")
	runCert(t, "", "cert", "gen", "--out", other)
	r = runCert(t, "", "cert", "check", cert, "--ca", filepath.Join(other, "ca.pem"), "--json")
	var rep certcheck.CheckReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if r.code != 1 || rep.OK || len(rep.Chains) != 1 || rep.Chains[0].OK || !strings.Contains(rep.Chains[0].Problem, "not issued by the given CA") {
		t.Fatalf("other CA: %d %+v", r.code, rep)
	}
}

func TestCertVerify(t *testing.T) {
	dir, p := certPKI(t, "--host", "broker.local")
	ca := filepath.Join(dir, "ca.pem")
	r := runCert(t, "", "cert", "verify", "--ca", ca, "--cert", filepath.Join(dir, "server.pem"), "--key", filepath.Join(dir, "server-key.pem"), "--host", "broker.local")
	if r.code != 0 {
		t.Fatalf("good: %s", r.all())
	}
	wantContains(t, r, "ok   valid for host broker.local", "matches the certificate")

	r = runCert(t, "", "cert", "verify", "--ca", ca, "--cert", filepath.Join(dir, "server.pem"), "--host", "other.example")
	if r.code != 1 {
		t.Fatalf("wrong host: %d", r.code)
	}
	wantContains(t, r, `not valid for "other.example"`, "broker.local", "hint:")

	// A private key where the certificate was expected.
	r = runCert(t, "", "cert", "verify", "--ca", ca, "--cert", filepath.Join(dir, "server-key.pem"))
	if r.code != 1 {
		t.Fatalf("swapped: %d", r.code)
	}
	wantContains(t, r, "expected a certificate but found a private key", "swapped")

	// Key of another certificate.
	r = runCert(t, "", "cert", "verify", "--ca", ca, "--cert", filepath.Join(dir, "server.pem"), "--key", filepath.Join(dir, "fennec-client-key.pem"))
	if r.code != 1 {
		t.Fatalf("mismatch: %d", r.code)
	}
	wantContains(t, r, "does not match the certificate")

	// An expired certificate, with the date.
	exp, err := devpki.Issue(devpki.CertSpec{CommonName: "old", Client: true, NotBefore: p.CA.Cert.NotBefore, NotAfter: p.CA.Cert.NotBefore.Add(1)}, p.CA)
	if err != nil {
		t.Fatal(err)
	}
	expFile := filepath.Join(dir, "old.pem")
	os.WriteFile(expFile, exp.CertPEM, 0o644)
	r = runCert(t, "", "cert", "verify", "--ca", ca, "--cert", expFile)
	if r.code != 1 {
		t.Fatalf("expired: %d", r.code)
	}
	wantContains(t, r, "expired on "+exp.Cert.NotAfter.UTC().Format("2006-01-02"))
}

func TestCertConvertForms(t *testing.T) {
	dir, p := certPKI(t)
	ca := filepath.Join(dir, "ca.pem")
	r := runCert(t, "", "cert", "convert", "--to", "c", ca, "--name", "ca_cert_der_256")
	if r.code != 0 {
		t.Fatal(r.all())
	}
	wantContains(t, r, "static const unsigned char ca_cert_der_256[] =", "0x30, 0x82,", "static const int sizeof_ca_cert_der_256 = sizeof(ca_cert_der_256);")

	derFile := filepath.Join(dir, "ca.der")
	if r := runCert(t, "", "cert", "convert", "--to", "der", ca, "-o", derFile); r.code != 0 {
		t.Fatal(r.all())
	}
	der, _ := os.ReadFile(derFile)
	if !bytes.Equal(der, p.CA.Cert.Raw) {
		t.Fatal("DER output differs")
	}
	// Back to PEM from DER.
	r = runCert(t, "", "cert", "convert", "--to", "pem", derFile)
	if b, _ := pem.Decode([]byte(r.stdout)); b == nil || !bytes.Equal(b.Bytes, p.CA.Cert.Raw) {
		t.Fatalf("pem: %s", r.all())
	}
	// Go form parses back.
	r = runCert(t, "", "cert", "convert", "--to", "go", ca, "--name", "caCert")
	wantContains(t, r, "var caCert = []byte{")
	// A key is written 0600, also over an existing file that others could read.
	keyC := filepath.Join(dir, "key.h")
	if err := os.WriteFile(keyC, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runCert(t, "", "cert", "convert", "--to", "c", filepath.Join(dir, "fennec-client-key.pem"), "-o", keyC); r.code != 0 {
		t.Fatal(r.all())
	}
	if st, _ := os.Stat(keyC); st.Mode().Perm() != 0o600 {
		t.Fatalf("key header mode %v", st.Mode().Perm())
	}
	// DER of a two-object file is refused with a reason.
	bundle := filepath.Join(dir, "bundle.pem")
	os.WriteFile(bundle, append(append([]byte{}, p.Server.CertPEM...), p.CA.CertPEM...), 0o644)
	r = runCert(t, "", "cert", "convert", "--to", "der", bundle)
	if r.code != 1 || !strings.Contains(r.stder, "holds 2 objects") {
		t.Fatalf("bundle to der: %d %s", r.code, r.all())
	}
	// Missing --to is a usage error.
	if r := runCert(t, "", "cert", "convert", ca); r.code != 2 {
		t.Fatalf("no --to: %d", r.code)
	}
}

func TestCertEncryptedKeyPassphrase(t *testing.T) {
	dir, p := certPKI(t)
	b, _ := pem.Decode(p.Client().KeyPEM)
	enc, err := pki.EncryptPKCS8Iterations(b.Bytes, []byte("open sesame"), 1000) // few iterations: a quick test
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "enc-key.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: enc}), 0o600)
	cert := filepath.Join(dir, "fennec-client.pem")
	ca := filepath.Join(dir, "ca.pem")

	// From the prompt (standard input here).
	r := runCert(t, "open sesame\n", "cert", "verify", "--ca", ca, "--cert", cert, "--key", keyFile)
	if r.code != 0 {
		t.Fatalf("prompt: %s", r.all())
	}
	wantContains(t, r, "Passphrase for", "matches the certificate")
	// From a file.
	pf := filepath.Join(dir, "pass")
	os.WriteFile(pf, []byte("open sesame\n"), 0o600)
	if r := runCert(t, "", "cert", "check", cert, keyFile, "--passphrase-file", pf); r.code != 0 {
		t.Fatalf("file: %s", r.all())
	}
	// From the environment, wrong.
	t.Setenv("FENNEC_KEY_PASSPHRASE", "nope")
	r = runCert(t, "", "cert", "verify", "--ca", ca, "--cert", cert, "--key", keyFile)
	if r.code != 1 {
		t.Fatalf("wrong: %d", r.code)
	}
	wantContains(t, r, "wrong passphrase")
}

func TestCertHelpHasExamples(t *testing.T) {
	for _, sub := range []string{"inspect", "check", "convert", "gen", "verify"} {
		r := runCert(t, "", "cert", sub, "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "fennec cert "+sub) {
			t.Errorf("cert %s --help: %d\n%s", sub, r.code, r.stdout)
		}
	}
}
