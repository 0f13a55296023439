package pki

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// C and Go source holding certificates: wolfSSL's certs_test.h style
//
//	static const unsigned char ca_cert_der_2048[] = { 0x30, 0x82, ... };
//	static const int sizeof_ca_cert_der_2048 = sizeof(ca_cert_der_2048);
//
// PEM text in string literals (as in the wolfMQTT AWS example)
//
//	static const char* root_ca = "-----BEGIN CERTIFICATE-----\n" "MIID..." ;
//
// and the Go form written by EncodeGo.

var cDeclRe = regexp.MustCompile(`(?m)(\w+\s*\[\s*\w*\s*\]\s*=)|(=\s*"-----BEGIN)|(\[\]byte\s*\{)|(char\s*\*\s*\w+\s*=\s*")|(=\s*\{\s*(0[xX][0-9a-fA-F]|\d))`)

func looksLikeC(b []byte) bool {
	return cDeclRe.Match(b)
}

type ctoken struct {
	kind byte // 'i' identifier, 'n' number, 's' string, 'c' char literal, 'p' punctuation
	text string
	str  []byte // decoded string or char literal
}

// tokenizeC splits C (or Go) source into tokens, dropping comments and preprocessor lines.
func tokenizeC(src []byte) []ctoken {
	var toks []ctoken
	s := string(src)
	lineStart := true
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\n':
			lineStart = true
			i++
			continue
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			i++
			continue
		case c == '#' && lineStart:
			// Preprocessor line, with backslash continuations.
			for i < len(s) && s[i] != '\n' {
				if s[i] == '\\' && i+1 < len(s) && s[i+1] == '\n' {
					i++
				}
				i++
			}
			continue
		}
		lineStart = false
		switch {
		case strings.HasPrefix(s[i:], "//"):
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				i = len(s)
			} else {
				i += end + 4
			}
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			var buf []byte
			for j < len(s) && s[j] != c {
				if s[j] == '\\' && c != '`' && j+1 < len(s) {
					b, n := cEscape(s[j+1:])
					buf = append(buf, b...)
					j += 1 + n
					continue
				}
				buf = append(buf, s[j])
				j++
			}
			kind := byte('s')
			if c == '\'' {
				kind = 'c'
			}
			toks = append(toks, ctoken{kind: kind, text: s[i:min(j+1, len(s))], str: buf})
			i = j + 1
		case isIdentStart(c):
			j := i
			for j < len(s) && (isIdentStart(s[j]) || (s[j] >= '0' && s[j] <= '9')) {
				j++
			}
			toks = append(toks, ctoken{kind: 'i', text: s[i:j]})
			i = j
		case c >= '0' && c <= '9':
			j := i
			for j < len(s) && (isIdentStart(s[j]) || (s[j] >= '0' && s[j] <= '9')) {
				j++
			}
			toks = append(toks, ctoken{kind: 'n', text: s[i:j]})
			i = j
		default:
			toks = append(toks, ctoken{kind: 'p', text: s[i : i+1]})
			i++
		}
	}
	return toks
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// cEscape decodes the escape after a backslash and returns the bytes and how much it consumed.
func cEscape(s string) ([]byte, int) {
	switch s[0] {
	case 'n':
		return []byte{'\n'}, 1
	case 'r':
		return []byte{'\r'}, 1
	case 't':
		return []byte{'\t'}, 1
	case '0', '1', '2', '3', '4', '5', '6', '7':
		n := 0
		v := 0
		for n < 3 && n < len(s) && s[n] >= '0' && s[n] <= '7' {
			v = v*8 + int(s[n]-'0')
			n++
		}
		return []byte{byte(v)}, n
	case 'x':
		n := 1
		v := 0
		for n < len(s) && n < 3 && strings.IndexByte("0123456789abcdefABCDEF", s[n]) >= 0 {
			d, _ := strconv.ParseUint(s[n:n+1], 16, 8)
			v = v*16 + int(d)
			n++
		}
		return []byte{byte(v)}, n
	case '\n':
		return nil, 1 // line continuation
	}
	return []byte{s[0]}, 1
}

// parseCInt parses a C or Go integer literal (with optional u/U/l/L suffixes).
func parseCInt(t string) (int64, bool) {
	t = strings.TrimRight(t, "uUlL")
	v, err := strconv.ParseInt(t, 0, 64)
	if err != nil {
		// C octal "0123" is also Go's; "0o" is Go only; both handled by base 0.
		return 0, false
	}
	return v, true
}

type cDecl struct {
	name     string
	isString bool
	goSlice  bool
	data     []byte
	badElem  string // first element that is not a byte value
}

// parseSource finds byte arrays, string literals and sizeof_ constants in C or Go source.
func (p *parser) parseSource(src []byte, file string) []Object {
	toks := tokenizeC(src)
	var decls []cDecl
	sizes := map[string]int{}
	for i := 0; i < len(toks); i++ {
		if toks[i].kind != 'p' || toks[i].text != "=" || i == 0 {
			continue
		}
		name := declName(toks, i)
		if name == "" {
			continue
		}
		j := i + 1
		// Go: = []byte{ ... }
		goSlice := false
		if j+3 < len(toks) && toks[j].text == "[" && toks[j+1].text == "]" && toks[j+2].kind == 'i' {
			j += 3
			goSlice = true
		}
		if j >= len(toks) {
			break
		}
		switch {
		case toks[j].text == "{":
			d := cDecl{name: name, goSlice: goSlice}
			k := j + 1
			for ; k < len(toks) && toks[k].text != "}"; k++ {
				t := toks[k]
				switch t.kind {
				case 'n':
					v, ok := parseCInt(t.text)
					if !ok || v < 0 || v > 255 {
						if d.badElem == "" {
							d.badElem = t.text
						}
						continue
					}
					d.data = append(d.data, byte(v))
				case 'c':
					d.data = append(d.data, t.str...)
				case 'p':
					if t.text != "," && d.badElem == "" {
						d.badElem = t.text
					}
				default:
					if d.badElem == "" {
						d.badElem = t.text
					}
				}
			}
			decls = append(decls, d)
			i = k
		case toks[j].kind == 's':
			d := cDecl{name: name, isString: true}
			k := j
			for ; k < len(toks) && toks[k].kind == 's'; k++ {
				d.data = append(d.data, toks[k].str...)
			}
			decls = append(decls, d)
			i = k - 1
		case strings.HasPrefix(name, "sizeof_") && toks[j].kind == 'n':
			if v, ok := parseCInt(toks[j].text); ok {
				sizes[strings.TrimPrefix(name, "sizeof_")] = int(v)
			}
		}
	}
	var objs []Object
	for _, d := range decls {
		objs = append(objs, p.fromDecl(d, sizes)...)
	}
	return objs
}

// declName returns the variable name declared before the '=' at toks[i], skipping an array
// suffix "[...]".
func declName(toks []ctoken, i int) string {
	j := i - 1
	// Attributes between the declarator and '=', as in "x[] PROGMEM = {...}".
	for j > 0 && toks[j].kind == 'i' && toks[j-1].text == "]" {
		j--
	}
	if toks[j].text == "]" {
		for j >= 0 && toks[j].text != "[" {
			j--
		}
		j--
	}
	if j < 0 || toks[j].kind != 'i' {
		return ""
	}
	return toks[j].text
}

func (p *parser) fromDecl(d cDecl, sizes map[string]int) []Object {
	container := ContainerCArray
	if d.goSlice {
		container = ContainerGoSlice
	}
	if d.isString {
		container = ContainerCString
	}
	var warnings []error
	if n, ok := sizes[d.name]; ok && n != len(d.data) && !d.isString {
		warnings = append(warnings, &SizeMismatchError{Name: d.name, Declared: n, Present: len(d.data)})
	}
	if d.badElem != "" {
		return []Object{{Name: d.name, Container: container, Err: &NotDERError{Name: d.name, Reason: fmt.Sprintf("array element %q is not a byte value", d.badElem)}}}
	}
	data := d.data
	trimmed := bytes.TrimSpace(bytes.TrimRight(data, "\x00"))
	var objs []Object
	switch {
	case len(trimmed) == 0:
		return []Object{{Name: d.name, Container: container, Err: &NotDERError{Name: d.name, Reason: "the array is empty"}}}
	case d.isString && bytes.Contains(trimmed, []byte("-----BEGIN ")) && !bytes.Contains(trimmed, []byte("\n")):
		// Literals written one per PEM line without "\n" concatenate into one line.
		return []Object{{Name: d.name, Container: container, Err: &PEMNoNewlineError{Name: d.name}}}
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) || (bytes.Contains(trimmed, []byte("-----BEGIN ")) && isText(trimmed)):
		objs = p.parsePEM(trimmed, d.name, container)
		if !d.isString {
			// PEM text where DER bytes belong.
			for i := range objs {
				typ := objs[i].PEMType
				if typ == "" {
					typ = "CERTIFICATE"
				}
				objs[i].Err = &PEMInArrayError{Name: objs[i].Name, PEMType: typ}
				objs[i].Container = container
			}
		}
	case data[0] == 0x30 && !d.isString:
		objs = p.parseDERSeq(data, d.name, container)
	default:
		if der, ok := decodeBase64(trimmed); ok {
			objs = p.parseDERSeq(der, d.name, ContainerBase64)
			if !d.isString {
				for i := range objs {
					objs[i].Err = &Base64InArrayError{Name: objs[i].Name}
					objs[i].Container = container
				}
			}
			break
		}
		if d.isString {
			return nil // an ordinary string constant (a host name, a topic): not ours
		}
		objs = []Object{{Name: d.name, Container: container, DER: data, Err: &NotDERError{Name: d.name, Reason: fmt.Sprintf("the array starts with 0x%02x; DER certificates and keys start with 0x30", data[0])}}}
	}
	for i := range objs {
		objs[i].Warnings = append(objs[i].Warnings, warnings...)
	}
	return objs
}

// cIdent turns a name into a valid C identifier.
func cIdent(s string) string {
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		s = s[i+1:]
	}
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i] + "_" + s[i+1:]
	}
	var b strings.Builder
	for i, c := range s {
		switch {
		case c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9' && i > 0):
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "cert_der"
	}
	return b.String()
}

// CName returns a wolfSSL-style variable name for an object from a file name: "ca.pem" holding a
// certificate becomes "ca_cert_der", "client-key.pem" becomes "client_key_der".
func CName(file string, k Kind) string {
	base := file
	if i := strings.LastIndexAny(base, `/\`); i >= 0 {
		base = base[i+1:]
	}
	if i := strings.IndexByte(base, '.'); i > 0 {
		base = base[:i]
	}
	base = strings.ToLower(cIdent(base))
	switch k {
	case KindCertificate:
		if !strings.Contains(base, "cert") && !strings.Contains(base, "crt") {
			base += "_cert"
		}
	case KindPrivateKey:
		if !strings.Contains(base, "key") {
			base += "_key"
		}
	}
	if !strings.HasSuffix(base, "_der") {
		base += "_der"
	}
	return base
}

// EncodeC writes der as a C array in the style of wolfSSL's certs_test.h (what its dertoc.pl
// produces): 16 bytes per line and a sizeof_ constant.
func EncodeC(name string, der []byte) []byte {
	name = cIdent(name)
	var b bytes.Buffer
	fmt.Fprintf(&b, "static const unsigned char %s[] =\n{\n", name)
	writeHexRows(&b, der, "    ")
	fmt.Fprintf(&b, "};\nstatic const int sizeof_%s = sizeof(%s);\n", name, name)
	return b.Bytes()
}

// EncodeGo writes der as a Go byte slice variable.
func EncodeGo(name string, der []byte) []byte {
	name = goIdent(name)
	var b bytes.Buffer
	fmt.Fprintf(&b, "// %s holds %d bytes of DER.\nvar %s = []byte{\n", name, len(der), name)
	writeHexRows(&b, der, "\t")
	b.WriteString("}\n")
	return b.Bytes()
}

func writeHexRows(b *bytes.Buffer, der []byte, indent string) {
	for i := 0; i < len(der); i += 16 {
		b.WriteString(indent)
		end := min(i+16, len(der))
		for j := i; j < end; j++ {
			fmt.Fprintf(b, "0x%02X,", der[j])
			if j < end-1 {
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
}

func goIdent(s string) string {
	parts := strings.FieldsFunc(cIdent(s), func(r rune) bool { return r == '_' })
	for i := 1; i < len(parts); i++ {
		parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
	}
	if len(parts) == 0 {
		return "certDER"
	}
	return strings.Join(parts, "")
}
