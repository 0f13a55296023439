package certcheck

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fennec-mqtt/fennec/pki"
)

// isAWSIoTDeviceCert reports whether cert was issued by AWS IoT's own device CA (what the AWS
// IoT console and CreateKeysAndCertificate produce), as opposed to a CA you registered. The
// exported form is awsiot.IsDeviceCert; Check needs the fact without importing the adapter.
func isAWSIoTDeviceCert(cert *x509.Certificate) bool {
	for _, ou := range cert.Issuer.OrganizationalUnit {
		if strings.HasPrefix(ou, "Amazon Web Services O=Amazon.com Inc.") {
			return true
		}
	}
	return false
}

// CheckOptions configures Check.
type CheckOptions struct {
	// CAs to verify the certificates against; empty: the CA certificates found among the
	// objects themselves (a certs_test.h usually holds the CA, the device certificate and key).
	CAs []*x509.Certificate
	// Host, when set, must be a SAN of the leaf certificates.
	Host string
	// Now is the time to check validity at; zero: time.Now().
	Now time.Time
}

// CheckReport is the result of Check; it marshals to JSON.
type CheckReport struct {
	OK      bool           `json:"ok"`
	Objects []ObjectReport `json:"objects"`
	Pairs   []PairReport   `json:"pairs,omitempty"`
	Chains  []ChainReport  `json:"chains,omitempty"`
	// Notes are findings that do not belong to a single object (chain order, keys without
	// certificates).
	Notes []string `json:"notes,omitempty"`
}

// ObjectReport is one object and whether it is usable.
type ObjectReport struct {
	Name        string   `json:"name"`
	Kind        pki.Kind `json:"kind"`
	Container   string   `json:"container"`
	Encoding    string   `json:"encoding,omitempty"`
	Description string   `json:"description"`
	OK          bool     `json:"ok"`
	Problem     string   `json:"problem,omitempty"`
	Hint        string   `json:"hint,omitempty"`
	Warnings    []string `json:"warnings,omitempty"`
	Err         error    `json:"-"`
}

// PairReport says which key belongs to which certificate.
type PairReport struct {
	Cert    string `json:"cert"`
	Key     string `json:"key"`
	Match   bool   `json:"match"`
	Problem string `json:"problem,omitempty"`
	Hint    string `json:"hint,omitempty"`
}

// ChainReport says whether a certificate chains to the CA.
type ChainReport struct {
	Cert    string `json:"cert"`
	CA      string `json:"ca"`
	OK      bool   `json:"ok"`
	Problem string `json:"problem,omitempty"`
	Hint    string `json:"hint,omitempty"`
	// Note explains a chain that is not checked against the CA given, and why that is right.
	Note string `json:"note,omitempty"`
	Err  error  `json:"-"`
}

// Check examines every object: whether it parsed and is within its validity period, which key
// matches which certificate, and whether the certificates that are not CAs chain to the CA.
func Check(objs []pki.Object, opts CheckOptions) CheckReport {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	r := CheckReport{OK: true}
	in := r.checkObjects(objs, now)
	if len(in.mismatched) == 2 && in.mismatched[0].Kind != in.mismatched[1].Kind {
		r.Notes = append(r.Notes, fmt.Sprintf("the arrays %s and %s are swapped: each holds what the other's name says", in.mismatched[0].Name, in.mismatched[1].Name))
	}
	r.checkPairs(in)
	r.checkChains(in, opts, now)
	var chain []*x509.Certificate
	for _, c := range in.certs {
		chain = append(chain, c.Cert)
	}
	if len(chain) > 1 && !chain[0].IsCA {
		r.Notes = append(r.Notes, ChainOrder(chain)...)
	}
	return r
}

// checkedSet is what checkObjects sorted out of the input.
type checkedSet struct {
	certs, leaves, keys []*pki.Object
	mismatched          []*pki.Object // arrays whose names disagree with their contents
	inputCAs            []*x509.Certificate
}

// checkObjects reports on each object by itself (parse errors, warnings, validity, names) and
// sorts them into certificates, leaves, keys and CAs.
func (r *CheckReport) checkObjects(objs []pki.Object, now time.Time) checkedSet {
	var in checkedSet
	for i := range objs {
		o := &objs[i]
		or := ObjectReport{Name: o.Name, Kind: o.Kind, Container: string(o.Container), Encoding: o.Encoding, Description: o.Describe(), OK: true}
		fail := func(err error) {
			or.OK, r.OK = false, false
			if or.Err == nil {
				or.Err, or.Problem, or.Hint = err, trimPrefix(err), pki.Hint(err)
			}
		}
		if o.Err != nil {
			fail(o.Err)
		}
		for _, w := range o.Warnings {
			or.Warnings = append(or.Warnings, trimPrefix(w))
			fail(w)
		}
		if o.Container == pki.ContainerBase64 && o.Err == nil {
			fail(&pki.UnarmouredBase64Error{Name: o.Name})
		}
		if err := nameMismatch(o); err != nil {
			fail(err)
			in.mismatched = append(in.mismatched, o)
		}
		if o.Cert != nil {
			if err := pki.CheckValidity(o.Cert, now); err != nil {
				fail(err)
			}
			if o.Err == nil {
				in.certs = append(in.certs, o)
				if o.Cert.IsCA {
					in.inputCAs = append(in.inputCAs, o.Cert)
				} else {
					in.leaves = append(in.leaves, o)
				}
			}
		}
		if o.Key != nil {
			in.keys = append(in.keys, o)
		}
		r.Objects = append(r.Objects, or)
	}

	return in
}

// checkPairs reports which key matches which certificate.
func (r *CheckReport) checkPairs(in checkedSet) {
	for _, k := range in.keys {
		matched := false
		for _, c := range in.certs {
			if pki.KeyMatches(c.Cert.PublicKey, k.Key) {
				r.Pairs = append(r.Pairs, PairReport{Cert: c.Name, Key: k.Name, Match: true})
				matched = true
			}
		}
		if !matched && len(in.certs) > 0 {
			r.OK = false
			if len(in.leaves) == 1 {
				err := pki.CheckKeyPair(in.leaves[0].Cert, k.Key, in.leaves[0].Name, k.Name)
				r.Pairs = append(r.Pairs, PairReport{Cert: in.leaves[0].Name, Key: k.Name, Problem: trimPrefix(err), Hint: pki.Hint(err)})
			} else {
				r.Notes = append(r.Notes, "the private key "+k.Name+" ("+pki.KeyDescription(k.Key.Public())+") matches none of the certificates")
			}
		}
	}

}

// checkChains verifies each leaf against the CAs given, or the CAs of the input.
func (r *CheckReport) checkChains(in checkedSet, opts CheckOptions, now time.Time) {
	cas := opts.CAs
	if len(cas) == 0 {
		cas = in.inputCAs
	}
	if len(cas) > 0 {
		var inter []*x509.Certificate // with --ca, CA certificates in the input may be intermediates
		if len(opts.CAs) > 0 {
			for _, c := range in.certs {
				inter = append(inter, c.Cert)
			}
		}
		for _, l := range in.leaves {
			cr := ChainReport{Cert: l.Name, CA: subjects(cas), OK: true}
			usage := UsageAny
			if opts.Host != "" {
				usage = UsageServer
			}
			err := Verify(l.Cert, VerifyOptions{Roots: cas, Intermediates: intermediatesExcept(inter, l.Cert), Host: opts.Host, Usage: usage, Now: now})
			var ne *pki.NotIssuedByError
			switch {
			case err == nil:
			case errors.As(err, &ne) && isAWSIoTDeviceCert(l.Cert) && opts.Host == "":
				// An AWS IoT device certificate is issued by the AWS IoT CA, which AWS keeps;
				// the CA file a device holds (Amazon Root CA 1) verifies the server instead.
				cr.Note = "issued by the AWS IoT device CA (" + pki.NameString(l.Cert.Issuer) + "), which AWS IoT checks on its side; the CA given verifies the server, so no chain is expected here"
			default:
				cr.OK, r.OK = false, false
				cr.Err, cr.Problem, cr.Hint = err, trimPrefix(err), pki.Hint(err)
			}
			r.Chains = append(r.Chains, cr)
		}
	}
}

func intermediatesExcept(all []*x509.Certificate, leaf *x509.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range all {
		if c != leaf && c.IsCA {
			out = append(out, c)
		}
	}
	return out
}

func subjects(certs []*x509.Certificate) string {
	s := ""
	for i, c := range certs {
		if i > 0 {
			s += "; "
		}
		s += pki.NameString(c.Subject)
	}
	return s
}

// NameMismatchError reports a C array (or Go slice) whose name says one kind of object and
// whose bytes hold another: a firmware that loads it by its name gets the wrong thing.
type NameMismatchError struct {
	Name  string
	Named pki.Kind // what the name says
	Holds pki.Kind
}

func (e *NameMismatchError) Error() string {
	return fmt.Sprintf("pki: the array %s is named as a %s but holds a %s", e.Name, e.Named, e.Holds)
}

// Hint implements Hinter.
func (e *NameMismatchError) Hint() string {
	return "regenerate the array from the right file (fennec cert convert --to c FILE --name " + e.Name + "), or rename it to what it holds"
}

// nameMismatch checks an array's name against its content: "key" in the name means a private
// key, "cert", "crt" or "ca" a certificate.
func nameMismatch(o *pki.Object) error {
	if o.Container != pki.ContainerCArray && o.Container != pki.ContainerCString && o.Container != pki.ContainerGoSlice {
		return nil
	}
	if o.Kind != pki.KindCertificate && o.Kind != pki.KindPrivateKey {
		return nil
	}
	words := strings.FieldsFunc(strings.ToLower(o.Name), func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') })
	var key, cert bool
	for _, w := range words {
		switch {
		case w == "key" || strings.HasSuffix(w, "key") || w == "priv" || w == "private":
			key = true
		case w == "cert" || w == "crt" || w == "ca" || w == "certificate" || strings.HasSuffix(w, "cert"):
			cert = true
		}
	}
	switch {
	case key && !cert && o.Kind == pki.KindCertificate:
		return &NameMismatchError{Name: o.Name, Named: pki.KindPrivateKey, Holds: pki.KindCertificate}
	case cert && !key && o.Kind == pki.KindPrivateKey:
		return &NameMismatchError{Name: o.Name, Named: pki.KindCertificate, Holds: pki.KindPrivateKey}
	}
	return nil
}
