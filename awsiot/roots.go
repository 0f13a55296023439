package awsiot

import (
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/pem"
	"strings"
)

// The Amazon Trust Services roots that sign AWS IoT Core's ATS endpoints: Root CA 1 (RSA 2048)
// and Root CA 3 (ECC P-256). Public certificates, as in every system CA store.
var (
	//go:embed roots/amazon-root-ca-1.pem
	RootCA1PEM []byte
	//go:embed roots/amazon-root-ca-3.pem
	RootCA3PEM []byte
)

// SHA-256 fingerprints of the DER encodings of the embedded roots.
const (
	RootCA1SHA256 = "8ECDE6884F3D87B1125BA31AC3FCB13D7016DE7F57CC904FE1CB97C6AE98196E"
	RootCA3SHA256 = "18CE6CFE7BF14E60B2E347B8DFE868CB31D02EBB3ADA271569F50343B46DB3A4"
)

// RootCAs returns the embedded Amazon Root CA 1 and Root CA 3.
func RootCAs() []*x509.Certificate {
	var out []*x509.Certificate
	for _, p := range [][]byte{RootCA1PEM, RootCA3PEM} {
		b, _ := pem.Decode(p)
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			panic("awsiot: embedded root: " + err.Error())
		}
		out = append(out, c)
	}
	return out
}

// Fingerprint is the upper-case hex SHA-256 of a certificate's DER encoding.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// IsAmazonRoot reports whether c is one of the Amazon Trust Services roots AWS IoT Core's ATS
// endpoints chain to (by subject: Amazon Root CA 1 to 4).
func IsAmazonRoot(c *x509.Certificate) bool {
	return len(c.Subject.Organization) == 1 && c.Subject.Organization[0] == "Amazon" &&
		strings.HasPrefix(c.Subject.CommonName, "Amazon Root CA ")
}

// IsDeviceCert reports whether c looks like a device certificate AWS IoT Core issued
// ("Create certificate" in the console or CreateKeysAndCertificate): its issuer is AWS's own
// device CA, whose name is the single odd attribute OU="Amazon Web Services O=Amazon.com Inc.
// L=Seattle ST=Washington C=US". Such a certificate does not chain to the Amazon roots, and
// need not: AWS checks it, the roots let the device check AWS.
func IsDeviceCert(c *x509.Certificate) bool {
	for _, ou := range c.Issuer.OrganizationalUnit {
		if strings.HasPrefix(ou, "Amazon Web Services O=Amazon.com Inc.") {
			return true
		}
	}
	return false
}
