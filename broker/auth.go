package broker

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/fennec-mqtt/fennec/topic"
)

// ACL is the authentication and authorization file of the broker, in JSON:
//
//	{
//	  "anonymous": false,
//	  "users": [
//	    {"name": "sensor-1", "publish": ["sensors/${clientid}/#"], "subscribe": ["cmd/${clientid}"]},
//	    {"name": "alice", "password": "pbkdf2-sha256$600000$…$…", "publish": ["#"], "subscribe": ["#"]}
//	  ],
//	  "default": {"publish": [], "subscribe": ["public/#"]}
//	}
//
// A user is either a certificate identity (the CN, or the first SAN when the CN is empty, of a
// client certificate verified by the listener) or a username with a password hash made by
// HashPassword. Filters may use ${clientid} and ${identity}. A client certificate wins over a
// username. Rules of "default" apply to anonymous clients and to certificate identities that are
// not listed; without "default" those may do nothing.
type ACL struct {
	// Anonymous lets clients without certificate and without username connect (with the default
	// rules). It has no effect on listeners that require client certificates.
	Anonymous bool   `json:"anonymous"`
	Users     []User `json:"users"`
	Default   *Rules `json:"default,omitempty"`
}

// User is one identity of the ACL file.
type User struct {
	Name string `json:"name"`
	// Password is a hash made by HashPassword; empty: the identity can only connect with a client
	// certificate.
	Password string `json:"password,omitempty"`
	Rules
}

// Rules are the topic filters an identity may publish to and subscribe to.
type Rules struct {
	Publish   []string `json:"publish"`
	Subscribe []string `json:"subscribe"`
}

// LoadACL reads an ACL file.
func LoadACL(path string) (*ACL, error) { return loadFile(path, "ACL file", ParseACL) }

// loadFile reads the file and parses it; the errors name the file.
func loadFile[T any](path, what string, parse func([]byte) (T, error)) (T, error) {
	var zero T
	data, err := os.ReadFile(path)
	if err != nil {
		return zero, fmt.Errorf("broker: %s: %w", what, err)
	}
	v, err := parse(data)
	if err != nil {
		return zero, fmt.Errorf("%w (in %s)", err, path)
	}
	return v, nil
}

// ParseACL parses and validates an ACL document; unknown fields are errors, so a misspelt key
// does not silently open or close access.
func ParseACL(data []byte) (*ACL, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var a ACL
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("broker: ACL file: %w", err)
	}
	seen := map[string]bool{}
	check := func(who string, r Rules) error {
		for _, f := range append(append([]string{}, r.Publish...), r.Subscribe...) {
			if err := topic.ValidateFilter(f); err != nil {
				return fmt.Errorf("broker: ACL file: %s: %w", who, err)
			}
		}
		return nil
	}
	for _, u := range a.Users {
		if u.Name == "" {
			return nil, errors.New("broker: ACL file: a user without name")
		}
		if seen[u.Name] {
			return nil, fmt.Errorf("broker: ACL file: user %q listed twice", u.Name)
		}
		seen[u.Name] = true
		if u.Password != "" {
			if _, _, _, err := parseHash(u.Password); err != nil {
				return nil, fmt.Errorf("broker: ACL file: user %q: %w", u.Name, err)
			}
		}
		if err := check("user "+strconv.Quote(u.Name), u.Rules); err != nil {
			return nil, err
		}
	}
	if a.Default != nil {
		if err := check("default", *a.Default); err != nil {
			return nil, err
		}
	}
	return &a, nil
}

func (a *ACL) user(name string) *User {
	for i := range a.Users {
		if a.Users[i].Name == name {
			return &a.Users[i]
		}
	}
	return nil
}

// PasswordIterations is the PBKDF2-SHA256 iteration count HashPassword uses by default (OWASP's
// 2023 recommendation for PBKDF2-HMAC-SHA256).
const PasswordIterations = 600_000

const hashScheme = "pbkdf2-sha256"

// HashPassword returns a salted PBKDF2-HMAC-SHA256 hash of password for the ACL file, in the form
// pbkdf2-sha256$<iterations>$<salt>$<key> (base64, no padding). iterations zero means
// PasswordIterations.
func HashPassword(password string, iterations int) (string, error) {
	if iterations <= 0 {
		iterations = PasswordIterations
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key, err := pbkdf2.Key(sha256.New, password, salt, iterations, 32)
	if err != nil {
		return "", fmt.Errorf("broker: %w", err)
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("%s$%d$%s$%s", hashScheme, iterations, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// CheckPassword reports whether password matches a hash made by HashPassword.
func CheckPassword(hash, password string) bool {
	iter, salt, want, err := parseHash(hash)
	if err != nil {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, password, salt, iter, len(want))
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1
}

func parseHash(h string) (iter int, salt, key []byte, err error) {
	parts := strings.Split(h, "$")
	if len(parts) != 4 || parts[0] != hashScheme {
		return 0, nil, nil, fmt.Errorf("password is not a %s$iterations$salt$key hash (make one with `fennec broker passwd`)", hashScheme)
	}
	iter, err = strconv.Atoi(parts[1])
	if err != nil || iter < 1 {
		return 0, nil, nil, errors.New("password hash: bad iteration count")
	}
	enc := base64.RawStdEncoding
	if salt, err = enc.DecodeString(parts[2]); err != nil {
		return 0, nil, nil, errors.New("password hash: bad salt")
	}
	if key, err = enc.DecodeString(parts[3]); err != nil || len(key) < 16 {
		return 0, nil, nil, errors.New("password hash: bad key")
	}
	return iter, salt, key, nil
}

// Identity returns the identity a client certificate gives its holder: the subject common name,
// or when that is empty the first DNS, URI or e-mail subject alternative name.
func Identity(cert *x509.Certificate) string {
	switch {
	case cert == nil:
		return ""
	case cert.Subject.CommonName != "":
		return cert.Subject.CommonName
	case len(cert.DNSNames) > 0:
		return cert.DNSNames[0]
	case len(cert.URIs) > 0:
		return cert.URIs[0].String()
	case len(cert.EmailAddresses) > 0:
		return cert.EmailAddresses[0]
	}
	return ""
}

func certIdentity(chain []*x509.Certificate) string {
	if len(chain) == 0 {
		return ""
	}
	return Identity(chain[0])
}

// allowed reports whether one of the rule filters covers the requested topic or filter.
func allowed(filters []string, req, clientID, identity string) bool {
	for _, f := range filters {
		f = strings.ReplaceAll(strings.ReplaceAll(f, "${clientid}", clientID), "${identity}", identity)
		if covers(f, req) {
			return true
		}
	}
	return false
}
