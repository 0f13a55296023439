package pki_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"net"
	"strings"

	"github.com/fennec-mqtt/fennec/pki"
	"github.com/fennec-mqtt/fennec/pki/certcheck"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

// A client configuration for mutual TLS: the CA that signed the broker, the device certificate
// and its key. Files may be PEM, DER or C headers; an encrypted key takes its passphrase from
// the environment.
func ExampleClientConfig() {
	p, _ := devpki.Generate(devpki.Options{})
	rec := &pki.HandshakeRecorder{}
	cfg, err := pki.ClientConfig(pki.ClientOptions{
		CAs:        []pki.Source{pki.BytesSource(p.CA.CertPEM, "ca.pem")}, // or pki.FileSource("ca.pem")
		Cert:       pki.BytesSource(p.Client().CertPEM, "device.pem"),
		Key:        pki.BytesSource(p.Client().KeyPEM, "device-key.pem"),
		Passphrase: pki.PassphraseFromEnv("DEVICE_KEY_PASSPHRASE"),
		ServerName: "localhost",
		Recorder:   rec, // keep it to explain a failed handshake
	})
	if err != nil {
		// Loading errors name the cause, e.g. "the private key ... does not match the
		// certificate"; pki.Hint(err) says what to do.
		log.Fatal(err, "\n", pki.Hint(err))
	}
	fmt.Println(tls.VersionName(cfg.MinVersion), cfg.ClientSessionCache != nil)
	// Output: TLS 1.2 true
}

// The classic hand conversion that makes wolfSSL fail with ASN_PARSE_E (-140): PEM text pasted
// into an array that is loaded as DER.
func ExampleParse_pemInsideDERArray() {
	p, _ := devpki.Generate(devpki.Options{})
	header := pki.EncodeC("ca_cert_der_2048", p.CA.CertPEM) // PEM bytes, not DER
	objs, _ := pki.Parse(header, "certs_test.h")
	var pe *pki.PEMInArrayError
	fmt.Println(objs[0].Name, objs[0].Kind, errors.As(objs[0].Err, &pe))
	fmt.Println(strings.SplitN(pki.Hint(objs[0].Err), "\n", 2)[0])
	// Output:
	// ca_cert_der_2048 certificate true
	// convert the PEM file to a real DER array: fennec cert convert --to c FILE.pem --name ca_cert_der_2048
}

// EncodeC writes the certs_test.h form, with its sizeof_ constant.
func ExampleEncodeC() {
	fmt.Print(string(pki.EncodeC("tiny_der", []byte{0x30, 0x03, 0x02, 0x01, 0x05})))
	// Output:
	// static const unsigned char tiny_der[] =
	// {
	//     0x30, 0x03, 0x02, 0x01, 0x05,
	// };
	// static const int sizeof_tiny_der = sizeof(tiny_der);
}

// Verify names why a certificate does not fit: here, the host name.
func ExampleVerify() {
	p, _ := devpki.Generate(devpki.Options{Hosts: []string{"broker.local"}, IPs: []net.IP{net.ParseIP("10.0.0.7")}})
	err := certcheck.Verify(p.Server.Cert, certcheck.VerifyOptions{Roots: []*x509.Certificate{p.CA.Cert}, Host: "broker.example", Usage: certcheck.UsageServer})
	fmt.Println(err)
	// Output: pki: certificate CN=broker.local,O=Fennec development is not valid for "broker.example": it is valid for broker.local, 10.0.0.7
}
