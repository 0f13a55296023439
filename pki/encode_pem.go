package pki

import (
	"encoding/pem"
)

func (o *Object) EncodePEM() []byte {
	typ := o.PEMType
	if typ == "" {
		typ = "CERTIFICATE"
	}
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: o.DER})
}
