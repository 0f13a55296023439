package awsiot_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/awsiot"
	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/pki"
)

// Custom authentication against the emulation: the user name carries the authorizer, the token
// and its RSA signature; the authorizer sees the token, the user name, the password and the
// client ID, and its policy governs the connection. A bad signature, a refused token and an
// unknown authorizer end the connection without CONNACK; port 443 offers ALPN "mqtt".
func TestCustomAuthorizer(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	allowOwn, err := broker.ParsePolicy([]byte(`{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:us-east-1:123456789012:client/app-*"},
	  {"Effect":"Allow","Action":["iot:Publish","iot:Receive","iot:Subscribe"],"Resource":["arn:aws:iot:us-east-1:123456789012:topic/apps/${iot:ClientId}/*","arn:aws:iot:us-east-1:123456789012:topicfilter/apps/${iot:ClientId}/*"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []broker.AuthorizerRequest
	az := broker.Authorizer{Name: "tokens", TokenKeyName: "token", SigningKey: &key.PublicKey, Authorize: func(r broker.AuthorizerRequest) broker.AuthorizerResponse {
		mu.Lock()
		seen = append(seen, r)
		mu.Unlock()
		return broker.AuthorizerResponse{IsAuthenticated: r.SignatureVerified && r.Token == "good-token" && string(r.Password) == "pw", PrincipalID: "user-" + r.Username, Policies: []*broker.Policy{allowOwn}}
	}}
	pol, _ := broker.ParsePolicy([]byte(shadowPolicy))
	b := brokertest.Start(t, brokertest.Options{OptionalClientCert: true, AWS: &broker.AWS{Policy: pol, Authorizers: []broker.Authorizer{az}}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := func(id string, ca *awsiot.CustomAuth) awsiot.Config {
		return awsiot.Config{Endpoint: b.TLSAddr, ClientID: id, ServerName: "localhost", RootCAs: []pki.Source{pki.FileSource(b.CAFile)},
			CustomAuth: ca, Base: fennec.Config{DisableReconnect: true}}
	}
	good := &awsiot.CustomAuth{Authorizer: "tokens", Username: "alice", Password: []byte("pw"), TokenKeyName: "token", Token: "good-token", SigningKey: key}
	c, err := awsiot.Connect(ctx, cfg("app-1", good))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	if _, err := c.Subscribe(ctx, func(m *fennec.Message) { got <- string(m.Payload) }, packet.Subscription{Filter: "apps/app-1/#", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, &fennec.Message{Topic: "apps/app-1/x", QoS: 1, Payload: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p != "hi" {
			t.Fatal(p)
		}
	case <-ctx.Done():
		t.Fatal("no message over the custom-authorized connection")
	}
	// the authorizer's policy, not the certificate policy, governs: another app's topic is refused
	if _, err := c.Subscribe(ctx, func(*fennec.Message) {}, packet.Subscription{Filter: "apps/app-2/#", QoS: 1}); err == nil {
		t.Fatal("subscribed outside the authorizer's policy")
	}
	c.Disconnect(ctx)
	mu.Lock()
	r := seen[0]
	mu.Unlock()
	if r.Username != "alice" || r.ClientID != "app-1" || r.ServerName != "localhost" || !r.SignatureVerified {
		t.Fatalf("authorizer request %+v", r)
	}

	wrongKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, ca := range map[string]*awsiot.CustomAuth{
		"bad signature":      {Authorizer: "tokens", Username: "alice", Password: []byte("pw"), TokenKeyName: "token", Token: "good-token", SigningKey: wrongKey},
		"no signature":       {Authorizer: "tokens", Username: "alice", Password: []byte("pw"), TokenKeyName: "token", Token: "good-token"},
		"refused token":      {Authorizer: "tokens", Username: "alice", Password: []byte("pw"), TokenKeyName: "token", Token: "bad-token", SigningKey: key},
		"unknown authorizer": {Authorizer: "nope", Username: "alice", Password: []byte("pw"), TokenKeyName: "token", Token: "good-token", SigningKey: key},
	} {
		var ce *fennec.ConnectError
		if _, err := awsiot.Connect(ctx, cfg("app-1", ca)); err == nil || !errors.As(err, &ce) || ce.Phase != fennec.PhaseMQTT {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := awsiot.Connect(ctx, cfg("other", good)); err == nil {
		t.Error("a client ID the authorizer's policy does not allow connected")
	}

	// the configuration for the real endpoint: 443 with ALPN mqtt, the user name's query
	fc, err := (&awsiot.Config{Endpoint: "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com", ClientID: "app-1", CustomAuth: &awsiot.CustomAuth{Authorizer: "tokens", Username: "alice", TokenKeyName: "token", Token: "t k", Signature: "c2ln"}}).ClientConfig()
	if err != nil || fc.Server != "mqtts://a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com:443" || strings.Join(fc.TLSConfig.NextProtos, ",") != "mqtt" {
		t.Fatalf("%+v %v", fc, err)
	}
	user, q, _ := strings.Cut(fc.Username, "?")
	v, _ := url.ParseQuery(q)
	if user != "alice" || v.Get("x-amz-customauthorizer-name") != "tokens" || v.Get("token") != "t k" || v.Get("x-amz-customauthorizer-signature") != "c2ln" {
		t.Fatalf("user name %q", fc.Username)
	}
}
