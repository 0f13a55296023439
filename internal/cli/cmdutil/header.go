package cmdutil

import (
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/fennec-mqtt/fennec/pki"
)

// HeaderMaterial picks the CA, client certificate and key arrays of a firmware's C header
// (certs_test.h): by name when given, else by content when exactly one array fits each role.
// It returns the TLS options with the exact bytes of those arrays, a line naming them, and the
// error of a selected array that firmware could not load (PEM text in an array, a truncated
// array), which the doctor reports as its local step.
func HeaderMaterial(file, caName, certName, keyName string, opts *pki.ClientOptions) (string, error, error) {
	objs, err := pki.FileSource(file).Parse(pki.ParseOptions{})
	if err != nil {
		return "", nil, &Failure{Code: ExitError, Step: "setup", Err: fmt.Errorf("--header: %w", err)}
	}
	pick := func(role, name string, fits func(o pki.Object) bool) (*pki.Object, error) {
		return pickArray(file, objs, role, name, fits)
	}
	isCA := func(o pki.Object) bool { return o.Kind == pki.KindCertificate && o.Cert != nil && o.Cert.IsCA }
	isLeaf := func(o pki.Object) bool { return o.Kind == pki.KindCertificate && o.Cert != nil && !o.Cert.IsCA }
	isKey := func(o pki.Object) bool { return o.Kind == pki.KindPrivateKey }
	ca, err := pick("ca", caName, isCA)
	if err != nil {
		return "", nil, err
	}
	cert, err := pick("cert", certName, isLeaf)
	if err != nil {
		return "", nil, err
	}
	key, err := pick("key", keyName, isKey)
	if err != nil {
		return "", nil, err
	}
	var used []string
	for _, sel := range []struct {
		role string
		o    *pki.Object
	}{{"CA", ca}, {"certificate", cert}, {"key", key}} {
		if sel.o == nil {
			continue
		}
		used = append(used, sel.role+" "+sel.o.Name)
		if sel.o.Err != nil {
			return "", sel.o.Err, nil
		}
	}
	// An array that failed to load fits no role: it is the firmware's problem too.
	if ca == nil || (cert == nil) != (key == nil) {
		for _, o := range objs {
			if o.Err != nil {
				return "", o.Err, nil
			}
		}
	}
	enc := func(o *pki.Object) pki.Source {
		return pki.BytesSource(pem.EncodeToMemory(&pem.Block{Type: o.PEMType, Bytes: o.DER}), file+": "+o.Name)
	}
	if ca != nil {
		opts.CAs = []pki.Source{enc(ca)}
	}
	if cert != nil {
		opts.Cert = enc(cert)
	}
	if key != nil {
		opts.Key = enc(key)
	}
	if cert != nil && key == nil || key != nil && cert == nil {
		return "", nil, UsageErrorf("--header %s: a client certificate and its key go together; found only %s", file, strings.Join(used, ", "))
	}
	return "from " + file + ": " + strings.Join(used, ", "), nil, nil
}

// pickArray is the array of objs (parsed from the header file) for a role: the one named name
// when given, else the one that fits; nil when none fits, a usage error when several do or the
// name is not there.
func pickArray(file string, objs []pki.Object, role, name string, fits func(o pki.Object) bool) (*pki.Object, error) {
	if name != "" {
		var names []string
		for i := range objs {
			if objs[i].Name == name {
				return &objs[i], nil
			}
			names = append(names, objs[i].Name)
		}
		return nil, UsageErrorf("--header %s: no array named %q (arrays: %s)", file, name, strings.Join(names, ", "))
	}
	var found []*pki.Object
	for i := range objs {
		if fits(objs[i]) {
			found = append(found, &objs[i])
		}
	}
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
		return found[0], nil
	}
	var fn []string
	for _, o := range found {
		fn = append(fn, o.Name)
	}
	return nil, UsageErrorf("--header %s: several arrays could be the %s (%s): choose one with --header-%s NAME", file, role, strings.Join(fn, ", "), role)
}
