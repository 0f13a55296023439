package broker

import (
	"cmp"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Custom authentication in the AWS emulation: a device without a certificate names an
// authorizer in its MQTT user name (user?x-amz-customauthorizer-name=NAME), with a token and,
// when the authorizer signs tokens, the token's signature; the authorizer (AWS's Lambda
// function, a Go function here) decides and returns the policies of the connection.
// Source: "Custom authentication and authorization" and "Connecting to AWS IoT Core by using
// custom authentication".
const awsDocCustomAuth = "https://docs.aws.amazon.com/iot/latest/developerguide/custom-auth.html"

// Authorizer is a custom authorizer of the emulation.
type Authorizer struct {
	Name string
	// TokenKeyName is the user name's query parameter that carries the token.
	TokenKeyName string
	// SigningKey, when set, makes token signing mandatory: the user name must carry
	// x-amz-customauthorizer-signature, the base64 RSA SHA-256 signature of the token.
	SigningKey *rsa.PublicKey
	// Authorize plays the authorizer's Lambda function.
	Authorize func(AuthorizerRequest) AuthorizerResponse
}

// AuthorizerRequest is what the authorizer function is given.
type AuthorizerRequest struct {
	Token             string
	SignatureVerified bool
	Username          string // the user name before its '?'
	Password          []byte
	ClientID          string
	ServerName        string // the TLS SNI
}

// AuthorizerResponse is the authorizer function's decision.
type AuthorizerResponse struct {
	IsAuthenticated bool
	PrincipalID     string
	Policies        []*Policy
}

const authorizerParam = "x-amz-customauthorizer-name"

func customAuthorizerName(username string) (string, bool) {
	_, q, ok := strings.Cut(username, "?")
	if !ok {
		return "", false
	}
	v, err := url.ParseQuery(q)
	if err != nil || v.Get(authorizerParam) == "" {
		return "", false
	}
	return v.Get(authorizerParam), true
}

// customAuthenticate runs the authorizer the user name names. A refusal closes the connection
// without CONNACK, as a denied certificate does.
func (a *AWS) customAuthenticate(cl *mqtt.Client, c *conn, s *session, pk packets.Packet, name string) error {
	var az *Authorizer
	for i := range a.Authorizers {
		if a.Authorizers[i].Name == name {
			az = &a.Authorizers[i]
		}
	}
	if az == nil || az.Authorize == nil {
		return fmt.Errorf("no custom authorizer %q (%s)", name, awsDocCustomAuth)
	}
	if c == nil || c.tls == nil {
		return errors.New("custom authentication without TLS: AWS IoT Core takes MQTT only over TLS")
	}
	user, rawQuery, _ := strings.Cut(string(pk.Connect.Username), "?")
	q, _ := url.ParseQuery(rawQuery)
	req := AuthorizerRequest{Username: user, Password: pk.Connect.Password, ClientID: cl.ID}
	if az.TokenKeyName != "" {
		req.Token = q.Get(az.TokenKeyName)
	}
	req.ServerName = c.tls.ServerName
	if az.SigningKey != nil {
		sig, err := base64.StdEncoding.DecodeString(q.Get("x-amz-customauthorizer-signature"))
		if err != nil || req.Token == "" {
			return fmt.Errorf("custom authorizer %q signs tokens: the user name lacks %s or x-amz-customauthorizer-signature", name, az.TokenKeyName)
		}
		h := sha256.Sum256([]byte(req.Token))
		if err := rsa.VerifyPKCS1v15(az.SigningKey, crypto.SHA256, h[:], sig); err != nil {
			return fmt.Errorf("custom authorizer %q: the token's signature does not verify", name)
		}
		req.SignatureVerified = true
	}
	res := az.Authorize(req)
	if !res.IsAuthenticated {
		return fmt.Errorf("custom authorizer %q refused the connection", name)
	}
	if len(res.Policies) == 0 {
		return errors.New("custom authorizer " + name + " returned no policy")
	}
	s.identity, s.method = cmp.Or(res.PrincipalID, user), "custom-authorizer:"+name
	s.aws.policies = res.Policies
	if !a.allowed(s, "iot:Connect", a.arn("client", cl.ID), a.vars(cl, s)) {
		return fmt.Errorf("the policies of custom authorizer %q deny iot:Connect for client ID %q", name, cl.ID)
	}
	return nil
}
