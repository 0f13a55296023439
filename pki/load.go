package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Source is certificate or key data given either as a file or as bytes. Data wins when both
// are set; Name labels Data in messages.
type Source struct {
	File string
	Data []byte
	Name string
}

// IsZero reports whether nothing was given.
func (s Source) IsZero() bool { return s.File == "" && len(s.Data) == 0 }

// FileSource is shorthand for Source{File: name}.
func FileSource(name string) Source { return Source{File: name} }

// BytesSource is shorthand for Source{Data: data, Name: name}.
func BytesSource(data []byte, name string) Source { return Source{Data: data, Name: name} }

func (s Source) label() string {
	switch {
	case s.Name != "":
		return s.Name
	case s.File != "":
		return s.File
	}
	return "(bytes)"
}

// Read returns the data and its label.
func (s Source) Read() ([]byte, string, error) {
	if len(s.Data) > 0 {
		return s.Data, s.label(), nil
	}
	if s.File == "" {
		return nil, "", fmt.Errorf("pki: no file or data given")
	}
	b, err := os.ReadFile(s.File)
	if err != nil {
		return nil, "", fmt.Errorf("pki: %w", err)
	}
	return b, s.label(), nil
}

// Parse parses the source with Parse.
func (s Source) Parse(opts ParseOptions) ([]Object, error) {
	b, name, err := s.Read()
	if err != nil {
		return nil, err
	}
	return ParseWith(b, name, opts)
}

// LoadCertificates returns every certificate in src in file order. An object that is not a
// certificate (a private key given as the certificate) or does not parse fails with the typed
// error naming why.
func LoadCertificates(src Source) ([]*x509.Certificate, error) {
	objs, err := src.Parse(ParseOptions{})
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for _, o := range objs {
		if o.Err != nil {
			return nil, o.Err
		}
		if o.Kind != KindCertificate {
			return nil, &WrongKindError{Name: o.Name, Want: KindCertificate, Got: o.Kind}
		}
		certs = append(certs, o.Cert)
	}
	return certs, nil
}

// LoadCAs returns the CA certificates in src, or a *NoCAError when it holds none.
func LoadCAs(src Source) ([]*x509.Certificate, error) {
	objs, err := src.Parse(ParseOptions{})
	if err != nil {
		return nil, err
	}
	_, name, _ := src.Read()
	return CACertificates(objs, name)
}

// LoadKey returns the single private key in src, decrypting it with pass when it is encrypted
// PKCS#8. A certificate where the key was expected fails with *WrongKindError.
func LoadKey(src Source, pass PassphraseFunc) (crypto.Signer, error) {
	objs, err := src.Parse(ParseOptions{Passphrase: pass})
	if err != nil {
		return nil, err
	}
	var other *Object
	for i, o := range objs {
		if o.Kind == KindPrivateKey {
			if o.Err != nil {
				return nil, o.Err
			}
			return o.Key, nil
		}
		if other == nil {
			other = &objs[i]
		}
	}
	if other.Err != nil {
		return nil, other.Err
	}
	return nil, &WrongKindError{Name: other.Name, Want: KindPrivateKey, Got: other.Kind}
}

// LoadKeyPair loads a certificate chain and its private key, and checks that they belong
// together. When keySrc is zero the key is looked for in certSrc (a combined PEM file).
func LoadKeyPair(certSrc, keySrc Source, pass PassphraseFunc) (tls.Certificate, error) {
	objs, err := certSrc.Parse(ParseOptions{Passphrase: pass})
	if err != nil {
		return tls.Certificate{}, err
	}
	var chain []*x509.Certificate
	var key crypto.Signer
	var keyName string
	for _, o := range objs {
		switch {
		case o.Kind == KindCertificate && o.Err == nil:
			chain = append(chain, o.Cert)
		case o.Kind == KindPrivateKey && keySrc.IsZero():
			if o.Err != nil {
				return tls.Certificate{}, o.Err
			}
			key, keyName = o.Key, o.Name
		case o.Err != nil:
			return tls.Certificate{}, o.Err
		}
	}
	if len(chain) == 0 {
		got := objs[0].Kind
		return tls.Certificate{}, &WrongKindError{Name: objs[0].Name, Want: KindCertificate, Got: got}
	}
	if !keySrc.IsZero() {
		if key, err = LoadKey(keySrc, pass); err != nil {
			return tls.Certificate{}, err
		}
		keyName = keySrc.label()
	}
	if key == nil {
		return tls.Certificate{}, fmt.Errorf("pki: %s holds no private key and no key file was given", certSrc.label())
	}
	if err := CheckKeyPair(chain[0], key, certSrc.label(), keyName); err != nil {
		return tls.Certificate{}, err
	}
	tc := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc, nil
}
