package awsiot

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
)

// CustomAuthALPN is the ALPN protocol of MQTT with custom authentication on port 443.
const CustomAuthALPN = "mqtt"

// CustomAuth connects through an AWS IoT custom authorizer: the MQTT user name carries the
// authorizer's name, the token and its signature as query parameters, and the password goes to
// the authorizer as it is. On port 443 the client offers ALPN "mqtt".
// Source: https://docs.aws.amazon.com/iot/latest/developerguide/custom-auth.html
type CustomAuth struct {
	// Authorizer is the authorizer's name (x-amz-customauthorizer-name).
	Authorizer string
	// Username is passed to the authorizer (the part before '?'); Password too.
	Username string
	Password []byte
	// TokenKeyName and Token: the token, in the query parameter the authorizer reads.
	TokenKeyName, Token string
	// Signature is the token's signature, base64, as the device was given it; or SigningKey
	// signs the token here (RSA, SHA-256), for tools that hold the key.
	Signature  string
	SigningKey crypto.Signer
}

// username builds the MQTT user name.
func (a *CustomAuth) username() (string, error) {
	q := url.Values{"x-amz-customauthorizer-name": {a.Authorizer}}
	if a.TokenKeyName != "" && a.Token != "" {
		q.Set(a.TokenKeyName, a.Token)
		sig := a.Signature
		if sig == "" && a.SigningKey != nil {
			h := sha256.Sum256([]byte(a.Token))
			b, err := a.SigningKey.Sign(rand.Reader, h[:], crypto.SHA256)
			if err != nil {
				return "", err
			}
			sig = base64.StdEncoding.EncodeToString(b)
		}
		if sig != "" {
			q.Set("x-amz-customauthorizer-signature", sig)
		}
	}
	return a.Username + "?" + q.Encode(), nil
}
