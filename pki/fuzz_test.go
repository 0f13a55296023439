package pki_test

import (
	"testing"

	"github.com/fennec-mqtt/fennec/internal/tlstest"
	"github.com/fennec-mqtt/fennec/pki"
)

// FuzzParse feeds Parse arbitrary bytes: it must never panic, and every object it returns
// must either have parsed or say why not.
func FuzzParse(f *testing.F) {
	fx := tlstest.Get(f)
	der := fx.Client.Cert.Raw
	f.Add(fx.Client.CertPEM)
	f.Add(fx.Client.KeyPEM)
	f.Add(der)
	f.Add(der[:len(der)/2])
	f.Add(pki.EncodeC("x", der))
	f.Add(pki.EncodeC("x", fx.CA.CertPEM))
	f.Add(pki.EncodeGo("x", der))
	f.Add(cPEMString("x", fx.CA.CertPEM))
	f.Add([]byte("static const char *s = \"\\x41\\101\\n\";\nunsigned char a[] = {0x30, 0x80, 'a', 07};"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := pki.ParseWith(data, "fuzz", pki.ParseOptions{Passphrase: func(string) ([]byte, error) { return []byte("x"), nil }})
		if err != nil {
			return
		}
		for _, o := range objs {
			if o.Err == nil && o.Kind == pki.KindUnknown {
				t.Fatalf("object %q of unknown kind without an error", o.Name)
			}
			if o.Err == nil && o.Cert == nil && o.Key == nil && o.PublicKey == nil {
				t.Fatalf("object %q parsed to nothing", o.Name)
			}
		}
	})
}
