package pki_test

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/internal/tlstest"
	"github.com/fennec-mqtt/fennec/pki"
	"github.com/fennec-mqtt/fennec/pki/certcheck"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

func mustParse(t *testing.T, data []byte, name string) []pki.Object {
	t.Helper()
	objs, err := pki.Parse(data, name)
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return objs
}

func TestParseFormsByContent(t *testing.T) {
	f := tlstest.Get(t)
	certDER := f.Client.Cert.Raw
	ecKey := f.Client.Key.(*ecdsa.PrivateKey)
	rsaKey := f.ClientRSA.Key.(*rsa.PrivateKey)
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	pkcs1 := x509.MarshalPKCS1PrivateKey(rsaKey)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	pubDER, _ := x509.MarshalPKIXPublicKey(ecKey.Public())

	cases := []struct {
		name      string
		data      []byte
		kind      pki.Kind
		container pki.Container
		encoding  string
	}{
		{"pem cert", f.Client.CertPEM, pki.KindCertificate, pki.ContainerPEM, "X.509"},
		{"der cert", certDER, pki.KindCertificate, pki.ContainerDER, "X.509"},
		{"base64 cert", []byte(base64.StdEncoding.EncodeToString(certDER) + "\n"), pki.KindCertificate, pki.ContainerBase64, "X.509"},
		{"pkcs8 pem", f.Client.KeyPEM, pki.KindPrivateKey, pki.ContainerPEM, "PKCS#8"},
		{"pkcs8 der", pkcs8, pki.KindPrivateKey, pki.ContainerDER, "PKCS#8"},
		{"sec1 pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), pki.KindPrivateKey, pki.ContainerPEM, "SEC1"},
		{"sec1 der", sec1, pki.KindPrivateKey, pki.ContainerDER, "SEC1"},
		{"pkcs1 pem", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: pkcs1}), pki.KindPrivateKey, pki.ContainerPEM, "PKCS#1"},
		{"pkcs1 der", pkcs1, pki.KindPrivateKey, pki.ContainerDER, "PKCS#1"},
		{"public key", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), pki.KindPublicKey, pki.ContainerPEM, "PKIX"},
		{"c array", pki.EncodeC("client_cert_der", certDER), pki.KindCertificate, pki.ContainerCArray, "X.509"},
		{"go slice", pki.EncodeGo("clientCert", certDER), pki.KindCertificate, pki.ContainerGoSlice, "X.509"},
		{"c pem string", cPEMString("client_cert", f.Client.CertPEM), pki.KindCertificate, pki.ContainerCString, "X.509"},
		// a misleading name must not matter: detection is by content
		{"key named .crt", f.Client.KeyPEM, pki.KindPrivateKey, pki.ContainerPEM, "PKCS#8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			objs := mustParse(t, tc.data, tc.name+".crt")
			if len(objs) != 1 {
				t.Fatalf("got %d objects, want 1: %+v", len(objs), objs)
			}
			o := objs[0]
			if o.Err != nil || o.Kind != tc.kind || o.Container != tc.container || o.Encoding != tc.encoding {
				t.Fatalf("got kind=%v container=%v encoding=%q err=%v; want %v %v %q", o.Kind, o.Container, o.Encoding, o.Err, tc.kind, tc.container, tc.encoding)
			}
			switch tc.kind {
			case pki.KindCertificate:
				if !o.Cert.Equal(f.Client.Cert) {
					t.Fatal("parsed certificate differs from the original")
				}
			case pki.KindPrivateKey:
				if o.Key == nil {
					t.Fatal("no key")
				}
			}
		})
	}
}

// cPEMString writes PEM as concatenated C string literals, as in the wolfMQTT AWS example.
func cPEMString(name string, pemData []byte) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "/* device certificate */\nstatic const char* %s =\n", name)
	for _, line := range strings.SplitAfter(strings.TrimSpace(string(pemData)), "\n") {
		fmt.Fprintf(&b, "    %q\n", line)
	}
	b.WriteString(";\n")
	return []byte(b.String())
}

func TestParseCertsTestHeader(t *testing.T) {
	f := tlstest.Get(t)
	keyDER, _ := x509.MarshalECPrivateKey(f.Client.Key.(*ecdsa.PrivateKey))
	var h strings.Builder
	h.WriteString("/* certs_test.h */\n#ifndef WOLFSSL_CERTS_TEST_H\n#define WOLFSSL_CERTS_TEST_H\n\n#ifdef USE_CERT_BUFFERS_256\n")
	h.Write(pki.EncodeC("ca_ecc_cert_der_256", f.CA.Cert.Raw))
	h.WriteString("\n// client certificate\n")
	h.Write(pki.EncodeC("cliecc_cert_der_256", f.Client.Cert.Raw))
	h.Write(pki.EncodeC("ecc_clikey_der_256", keyDER))
	h.WriteString("#endif\nstatic const char* broker_host = \"a1b2.iot.us-east-2.amazonaws.com\";\n#endif\n")
	objs := mustParse(t, []byte(h.String()), "certs_test.h")
	want := []struct {
		name string
		kind pki.Kind
	}{{"ca_ecc_cert_der_256", pki.KindCertificate}, {"cliecc_cert_der_256", pki.KindCertificate}, {"ecc_clikey_der_256", pki.KindPrivateKey}}
	if len(objs) != len(want) {
		t.Fatalf("got %d objects, want %d", len(objs), len(want))
	}
	for i, w := range want {
		if objs[i].Name != w.name || objs[i].Kind != w.kind || objs[i].Err != nil {
			t.Errorf("object %d = %s %v %v; want %s %v", i, objs[i].Name, objs[i].Kind, objs[i].Err, w.name, w.kind)
		}
	}
	rep := certcheck.Check(objs, certcheck.CheckOptions{})
	if !rep.OK {
		t.Fatalf("check of a good header failed: %+v", rep)
	}
	if len(rep.Pairs) != 1 || rep.Pairs[0].Cert != "cliecc_cert_der_256" || rep.Pairs[0].Key != "ecc_clikey_der_256" {
		t.Fatalf("pairs = %+v", rep.Pairs)
	}
	if len(rep.Chains) != 1 || !rep.Chains[0].OK {
		t.Fatalf("chains = %+v", rep.Chains)
	}
}

// The seed's failure: PEM text pasted byte by byte into an array loaded as DER (-140).
func TestPEMInsideDERArray(t *testing.T) {
	f := tlstest.Get(t)
	src := pki.EncodeC("ca_cert_der_2048", f.CA.CertPEM)
	objs := mustParse(t, src, "certs_test.h")
	if len(objs) != 1 {
		t.Fatalf("got %d objects", len(objs))
	}
	var pe *pki.PEMInArrayError
	if !errors.As(objs[0].Err, &pe) {
		t.Fatalf("err = %v; want *PEMInArrayError", objs[0].Err)
	}
	if pe.Name != "ca_cert_der_2048" || pe.PEMType != "CERTIFICATE" {
		t.Fatalf("got %+v", pe)
	}
	msg := objs[0].Err.Error()
	for _, want := range []string{"ca_cert_der_2048", "PEM text", "DER", "-140"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not mention %q", msg, want)
		}
	}
	if objs[0].Cert == nil || !objs[0].Cert.Equal(f.CA.Cert) {
		t.Error("the certificate inside the PEM text should still be identified")
	}
	if !strings.Contains(pki.Hint(objs[0].Err), "fennec cert convert --to c") {
		t.Errorf("hint = %q", pki.Hint(objs[0].Err))
	}
}

func TestArrayWithAttributeAndLowercaseHex(t *testing.T) {
	f := tlstest.Get(t)
	var b strings.Builder
	b.WriteString("const unsigned char root_ca[] PROGMEM = {")
	for i, c := range f.CA.Cert.Raw {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "0x%02x", c)
	}
	b.WriteString("};\nconst unsigned int root_ca_len = sizeof(root_ca);\n")
	objs := mustParse(t, []byte(b.String()), "root_ca.h")
	if len(objs) != 1 || objs[0].Name != "root_ca" || objs[0].Err != nil || !objs[0].Cert.Equal(f.CA.Cert) {
		t.Fatalf("%+v", objs)
	}
}

func TestBase64InsideDERArray(t *testing.T) {
	f := tlstest.Get(t)
	src := pki.EncodeC("ca_cert", []byte(base64.StdEncoding.EncodeToString(f.CA.Cert.Raw)))
	objs := mustParse(t, src, "certs.h")
	var be *pki.Base64InArrayError
	if !errors.As(objs[0].Err, &be) || !strings.Contains(objs[0].Err.Error(), "base64") {
		t.Fatalf("err = %v; want *Base64InArrayError", objs[0].Err)
	}
}

func TestTruncatedDER(t *testing.T) {
	f := tlstest.Get(t)
	der := f.Client.Cert.Raw
	cut := der[:len(der)-100]
	for _, tc := range []struct {
		name string
		data []byte
	}{{"file", cut}, {"array", pki.EncodeC("client_cert_der", cut)}} {
		t.Run(tc.name, func(t *testing.T) {
			objs := mustParse(t, tc.data, "client")
			var te *pki.TruncatedDERError
			if !errors.As(objs[0].Err, &te) {
				t.Fatalf("err = %v; want *TruncatedDERError", objs[0].Err)
			}
			if te.Declared != len(der) || te.Present != len(cut) {
				t.Fatalf("declared %d present %d; want %d %d", te.Declared, te.Present, len(der), len(cut))
			}
			msg := te.Error()
			if !strings.Contains(msg, "truncated") || !strings.Contains(msg, fmt.Sprint(len(der))) || !strings.Contains(msg, fmt.Sprint(len(cut))) {
				t.Fatalf("message %q should name truncation and both lengths", msg)
			}
		})
	}
}

func TestSizeofMismatchIsReported(t *testing.T) {
	f := tlstest.Get(t)
	src := string(pki.EncodeC("ca_cert_der", f.CA.Cert.Raw))
	src = strings.Replace(src, "sizeof(ca_cert_der)", "1190", 1)
	objs := mustParse(t, []byte(src), "certs.h")
	if objs[0].Err != nil || len(objs[0].Warnings) != 1 {
		t.Fatalf("err=%v warnings=%v", objs[0].Err, objs[0].Warnings)
	}
	var se *pki.SizeMismatchError
	if !errors.As(objs[0].Warnings[0], &se) || se.Declared != 1190 || se.Present != len(f.CA.Cert.Raw) {
		t.Fatalf("warning = %v", objs[0].Warnings[0])
	}
	if rep := certcheck.Check(objs, certcheck.CheckOptions{}); rep.OK {
		t.Fatal("check should fail on a wrong sizeof_ constant")
	}
}

func TestTrailingDataAfterDER(t *testing.T) {
	f := tlstest.Get(t)
	padded := append(append([]byte{}, f.CA.Cert.Raw...), 0xff, 0xee, 0xdd)
	objs := mustParse(t, pki.EncodeC("ca_der", padded), "x.h")
	var te *pki.TrailingDataError
	if len(objs) != 1 || objs[0].Err != nil || len(objs[0].Warnings) != 1 || !errors.As(objs[0].Warnings[0], &te) || te.Extra != 3 {
		t.Fatalf("%+v", objs)
	}
}

func TestPEMBundleAndNames(t *testing.T) {
	f := tlstest.Get(t)
	bundle := append(append([]byte("chain:\n"), f.Client.CertPEM...), f.CA.CertPEM...)
	objs := mustParse(t, bundle, "chain.pem")
	if len(objs) != 2 || objs[0].Name != "chain.pem#1" || objs[1].Name != "chain.pem#2" {
		t.Fatalf("objects: %+v", objs)
	}
	certs, err := pki.LoadCertificates(pki.BytesSource(bundle, "chain.pem"))
	if err != nil || len(certs) != 2 {
		t.Fatal(certs, err)
	}
	if notes := certcheck.ChainOrder(certs); len(notes) != 0 {
		t.Fatalf("right order reported: %v", notes)
	}
	if notes := certcheck.ChainOrder([]*x509.Certificate{certs[1], certs[0]}); len(notes) != 1 || !strings.Contains(notes[0], "reverse order") {
		t.Fatalf("reverse order: %v", notes)
	}
}

func TestKeyWhereCertificateExpected(t *testing.T) {
	f := tlstest.Get(t)
	_, err := pki.LoadCertificates(pki.BytesSource(f.Client.KeyPEM, "client.crt"))
	var we *pki.WrongKindError
	if !errors.As(err, &we) || we.Want != pki.KindCertificate || we.Got != pki.KindPrivateKey {
		t.Fatalf("err = %v; want *WrongKindError cert/key", err)
	}
	if !strings.Contains(err.Error(), "expected a certificate but found a private key") {
		t.Fatalf("message: %v", err)
	}
	// Also through LoadKeyPair with swapped files.
	_, err = pki.LoadKeyPair(pki.BytesSource(f.Client.KeyPEM, "key"), pki.BytesSource(f.Client.CertPEM, "cert"), nil)
	if !errors.As(err, &we) {
		t.Fatalf("swapped pair: %v", err)
	}
	// And a key under a CERTIFICATE label.
	k, _ := pem.Decode(f.Client.KeyPEM)
	objs := mustParse(t, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.Bytes}), "mislabelled.pem")
	if !errors.As(objs[0].Err, &we) || we.Got != pki.KindPrivateKey {
		t.Fatalf("mislabelled: %v", objs[0].Err)
	}
}

func TestKeyDoesNotMatchCertificate(t *testing.T) {
	f := tlstest.Get(t)
	_, err := pki.LoadKeyPair(pki.BytesSource(f.Client.CertPEM, "client.pem"), pki.BytesSource(f.Stray.KeyPEM, "stray-key.pem"), nil)
	var ke *pki.KeyMismatchError
	if !errors.As(err, &ke) || !strings.Contains(err.Error(), "does not match") || !strings.Contains(err.Error(), "device-1") {
		t.Fatalf("err = %v; want *KeyMismatchError naming the certificate", err)
	}
	// Different algorithms are named.
	_, err = pki.LoadKeyPair(pki.BytesSource(f.Client.CertPEM, "client.pem"), pki.BytesSource(f.ClientRSA.KeyPEM, "rsa-key.pem"), nil)
	if !errors.As(err, &ke) || !strings.Contains(err.Error(), "ECDSA P-256") || !strings.Contains(err.Error(), "RSA 2048") {
		t.Fatalf("err = %v", err)
	}
	// Check finds the mismatch in a combined file.
	objs := mustParse(t, append(append([]byte{}, f.Client.CertPEM...), f.Stray.KeyPEM...), "combined.pem")
	rep := certcheck.Check(objs, certcheck.CheckOptions{})
	if rep.OK || len(rep.Pairs) != 1 || rep.Pairs[0].Match || !strings.Contains(rep.Pairs[0].Problem, "does not match") {
		t.Fatalf("report: %+v", rep)
	}
}

func TestValidity(t *testing.T) {
	f := tlstest.Get(t)
	err := pki.CheckValidity(f.Expired.Cert, time.Now())
	var ve *pki.ValidityError
	if !errors.As(err, &ve) || !ve.Expired || ve.ClockUnset {
		t.Fatalf("expired: %v", err)
	}
	if !strings.Contains(err.Error(), "expired on "+f.Expired.Cert.NotAfter.UTC().Format(time.RFC3339)) {
		t.Fatalf("message lacks the date: %v", err)
	}
	err = pki.CheckValidity(f.NotYetValid.Cert, time.Now())
	if !errors.As(err, &ve) || ve.Expired || !strings.Contains(err.Error(), "not valid before") {
		t.Fatalf("not yet valid: %v", err)
	}
	// A device that booted without a clock: 1970.
	err = pki.CheckValidity(f.Client.Cert, time.Unix(0, 0))
	if !errors.As(err, &ve) || !ve.ClockUnset || !strings.Contains(err.Error(), "device clock is probably unset") {
		t.Fatalf("unset clock: %v", err)
	}
	if !strings.Contains(pki.Hint(err), "set the clock") {
		t.Fatalf("hint: %q", pki.Hint(err))
	}
	if pki.BuildTime().Before(pki.MinPlausibleTime) {
		t.Fatal("BuildTime before MinPlausibleTime")
	}
}

func TestNotIssuedByCA(t *testing.T) {
	f := tlstest.Get(t)
	err := certcheck.Verify(f.ClientOther.Cert, certcheck.VerifyOptions{Roots: []*x509.Certificate{f.CA.Cert}, Usage: certcheck.UsageClient})
	var ne *pki.NotIssuedByError
	if !errors.As(err, &ne) {
		t.Fatalf("err = %v; want *NotIssuedByError", err)
	}
	for _, want := range []string{"device-other", "Other Root CA", "Test Root CA"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	// Same CA name, different key: a regenerated CA.
	twin, _ := devpki.Issue(devpki.CertSpec{CommonName: "Test Root CA", IsCA: true}, nil)
	err = certcheck.Verify(f.Client.Cert, certcheck.VerifyOptions{Roots: []*x509.Certificate{twin.Cert}})
	if !errors.As(err, &ne) || !strings.Contains(ne.Reason, "same name") {
		t.Fatalf("twin CA: %v", err)
	}
	if err := certcheck.Verify(f.Client.Cert, certcheck.VerifyOptions{Roots: []*x509.Certificate{f.CA.Cert}, Usage: certcheck.UsageClient}); err != nil {
		t.Fatalf("good chain: %v", err)
	}
}

func TestVerifyHostnameAndUsage(t *testing.T) {
	f := tlstest.Get(t)
	roots := []*x509.Certificate{f.CA.Cert}
	err := certcheck.Verify(f.ServerWrongSAN.Cert, certcheck.VerifyOptions{Roots: roots, Host: "localhost", Usage: certcheck.UsageServer})
	var he *certcheck.HostnameError
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "broker.example.com") {
		t.Fatalf("err = %v; want *HostnameError listing the SANs", err)
	}
	err = certcheck.Verify(f.Client.Cert, certcheck.VerifyOptions{Roots: roots, Usage: certcheck.UsageServer})
	var ue *certcheck.UsageError
	if !errors.As(err, &ue) {
		t.Fatalf("client cert as server: %v", err)
	}
}

func TestCAFileWithoutCA(t *testing.T) {
	f := tlstest.Get(t)
	_, err := pki.LoadCAs(pki.BytesSource(f.Server.CertPEM, "ca.pem"))
	var ne *pki.NoCAError
	if !errors.As(err, &ne) || !strings.Contains(err.Error(), "no CA certificate") || !strings.Contains(err.Error(), "localhost") {
		t.Fatalf("err = %v; want *NoCAError describing the server certificate", err)
	}
	_, err = pki.ClientConfig(pki.ClientOptions{CAs: []pki.Source{pki.BytesSource(f.Client.KeyPEM, "ca.pem")}})
	if !errors.As(err, &ne) {
		t.Fatalf("key as CA: %v", err)
	}
}

func TestEncryptedPKCS8(t *testing.T) {
	f := tlstest.Get(t)
	k, _ := pem.Decode(f.Client.KeyPEM)
	enc, err := pki.EncryptPKCS8Iterations(k.Bytes, []byte("s3cret"), 1000)
	if err != nil {
		t.Fatal(err)
	}
	encPEM := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: enc})
	dir := t.TempDir()
	passFile := tlstest.Write(t, dir, "pass", []byte("s3cret\n"))

	objs := mustParse(t, encPEM, "key.pem")
	if !errors.Is(objs[0].Err, pki.ErrNeedPassphrase) {
		t.Fatalf("without passphrase: %v", objs[0].Err)
	}
	key, err := pki.LoadKey(pki.BytesSource(encPEM, "key.pem"), pki.PassphraseFromFile(passFile))
	if err != nil || !pki.KeyMatches(f.Client.Cert.PublicKey, key) {
		t.Fatalf("with passphrase file: %v", err)
	}
	t.Setenv("FENNEC_TEST_PASS", "wrong")
	_, err = pki.LoadKey(pki.BytesSource(encPEM, "key.pem"), pki.PassphraseFromEnv("FENNEC_TEST_PASS"))
	if !errors.Is(err, pki.ErrBadPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	// DER without armour is found by content too.
	objs, _ = pki.ParseWith(enc, "key.der", pki.ParseOptions{Passphrase: func(string) ([]byte, error) { return []byte("s3cret"), nil }})
	if objs[0].Err != nil || objs[0].Encoding != "encrypted PKCS#8" {
		t.Fatalf("DER: %+v", objs[0])
	}
}

// Keys encrypted by OpenSSL, an independent implementation, with several PBES2 parameter sets.
func TestEncryptedPKCS8FromOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	f := tlstest.Get(t)
	dir := t.TempDir()
	plain := tlstest.Write(t, dir, "plain.pem", f.ClientRSA.KeyPEM)
	for _, tc := range []struct{ cipher, prf string }{
		{"aes-256-cbc", "hmacWithSHA256"}, {"aes-128-cbc", "hmacWithSHA1"}, {"des3", "hmacWithSHA512"}, {"aes-192-cbc", "hmacWithSHA384"},
	} {
		t.Run(tc.cipher+"/"+tc.prf, func(t *testing.T) {
			out := filepath.Join(dir, tc.cipher+tc.prf+".pem")
			cmd := exec.Command(openssl, "pkcs8", "-topk8", "-in", plain, "-out", out, "-v2", tc.cipher, "-v2prf", tc.prf, "-passout", "pass:correct horse")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Skipf("openssl cannot write this combination: %v %s", err, b)
			}
			data, _ := os.ReadFile(out)
			key, err := pki.LoadKey(pki.BytesSource(data, out), func(string) ([]byte, error) { return []byte("correct horse"), nil })
			if err != nil {
				t.Fatal(err)
			}
			if !pki.KeyMatches(f.ClientRSA.Cert.PublicKey, key) {
				t.Fatal("decrypted key does not match")
			}
		})
	}
}

func TestNothingRecognised(t *testing.T) {
	_, err := pki.Parse([]byte("hello world, this is not a certificate\n"), "notes.txt")
	var ne *pki.NotDERError
	if !errors.As(err, &ne) || !strings.Contains(err.Error(), "notes.txt") {
		t.Fatalf("err = %v", err)
	}
	objs := mustParse(t, pki.EncodeC("blob", []byte{0x04, 0x01, 0x02}), "blob.h")
	if !errors.As(objs[0].Err, &ne) || !strings.Contains(objs[0].Err.Error(), "0x04") {
		t.Fatalf("err = %v", objs[0].Err)
	}
}

func TestEncodeCRoundTrip(t *testing.T) {
	f := tlstest.Get(t)
	src := pki.EncodeC("ca_cert_der_2048", f.CA.Cert.Raw)
	if !strings.Contains(string(src), "static const unsigned char ca_cert_der_2048[] =") ||
		!strings.Contains(string(src), "static const int sizeof_ca_cert_der_2048 = sizeof(ca_cert_der_2048);") {
		t.Fatalf("C form:\n%s", src)
	}
	objs := mustParse(t, src, "x.h")
	if !objs[0].Cert.Equal(f.CA.Cert) {
		t.Fatal("round trip lost the certificate")
	}
}

// An AWS IoT device certificate is issued by AWS's own CA, not by Amazon Root CA 1 (which the
// device holds to verify the server): check must not call that a failure.
func TestCheckAWSDeviceCertificateAgainstServerCA(t *testing.T) {
	awsCA, err := devpki.Issue(devpki.CertSpec{CommonName: "", IsCA: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Give the CA the subject AWS IoT's device CA has.
	tmpl := *awsCA.Cert
	tmpl.Subject.OrganizationalUnit = []string{"Amazon Web Services O=Amazon.com Inc. L=Seattle ST=Washington C=US"}
	tmpl.Subject.Organization = nil
	tmpl.RawSubject, tmpl.RawIssuer = nil, nil
	ca := reissue(t, &tmpl, awsCA)
	device, err := devpki.Issue(devpki.CertSpec{CommonName: "AWS IoT Certificate", Client: true}, ca)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := devpki.Issue(devpki.CertSpec{CommonName: "Amazon Root CA 1", IsCA: true}, nil)
	objs := mustParse(t, append(append([]byte{}, device.CertPEM...), device.KeyPEM...), "device.pem")
	rep := certcheck.Check(objs, certcheck.CheckOptions{CAs: []*x509.Certificate{root.Cert}})
	if !rep.OK || len(rep.Chains) != 1 || rep.Chains[0].Note == "" {
		t.Fatalf("%+v", rep)
	}
}

// reissue makes a self-signed CA certificate from tmpl with is's key.
func reissue(t *testing.T, tmpl *x509.Certificate, is *devpki.Issued) *devpki.Issued {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, is.Key.Public(), is.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &devpki.Issued{Cert: c, Key: is.Key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), KeyPEM: is.KeyPEM}
}

// Bundles made by OpenSSL: a PKCS#7 chain is opened, a PKCS#12 file is named.
func TestBundlesFromOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	f := tlstest.Get(t)
	dir := t.TempDir()
	chain := tlstest.Write(t, dir, "chain.pem", append(append([]byte{}, f.Client.CertPEM...), f.CA.CertPEM...))
	key := tlstest.Write(t, dir, "key.pem", f.Client.KeyPEM)
	for _, form := range []string{"PEM", "DER"} {
		p7 := filepath.Join(dir, "chain.p7b."+form)
		if out, err := exec.Command(openssl, "crl2pkcs7", "-nocrl", "-certfile", chain, "-outform", form, "-out", p7).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		data, _ := os.ReadFile(p7)
		objs := mustParse(t, data, "chain.p7b")
		if len(objs) != 2 || objs[0].Container != pki.ContainerPKCS7 || objs[0].Err != nil || !objs[0].Cert.Equal(f.Client.Cert) || !objs[1].Cert.Equal(f.CA.Cert) {
			t.Fatalf("%s: %+v", form, objs)
		}
	}
	p12 := filepath.Join(dir, "bundle.p12")
	if out, err := exec.Command(openssl, "pkcs12", "-export", "-in", chain, "-inkey", key, "-out", p12, "-passout", "pass:x").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	data, _ := os.ReadFile(p12)
	objs := mustParse(t, data, "bundle.p12")
	var pe *pki.PKCS12Error
	if !errors.As(objs[0].Err, &pe) || !strings.Contains(pki.Hint(objs[0].Err), "openssl pkcs12") {
		t.Fatalf("p12: %+v", objs)
	}
}
