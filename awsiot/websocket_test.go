package awsiot_test

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/awsiot"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/pki"
)

// The example keys of the AWS documentation.
const (
	exampleKeyID  = "AKIAIOSFODNN7EXAMPLE"
	exampleSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

// A fixed-time known answer for the signed WebSocket URL. The expected signature was computed
// independently of the Go signer, with Python's hmac and hashlib, from:
//
//	canonical request:  GET\n/mqtt\n<query>\nhost:<host>\n\nhost\n<sha256 of "">
//	query:              X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261201%2Feu-west-1%2Fiotdevicegateway%2Faws4_request&X-Amz-Date=20261201T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host
//	string to sign:     AWS4-HMAC-SHA256\n20261201T000000Z\n20261201/eu-west-1/iotdevicegateway/aws4_request\n<sha256 of the canonical request>
//	key:                HMAC chain of "AWS4"+secret, 20261201, eu-west-1, iotdevicegateway, aws4_request
//
// A session token is appended after signing and leaves the signature as it is.
func TestPresignWebSocketURLKnownAnswer(t *testing.T) {
	const host = "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com"
	const want = "2e9907db92ccc9039ddfdef5c5c9135fe3b48b6e0ac9bf1af75b04e7b66ec10f"
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	creds, err := awsiot.StaticCredentials(exampleKeyID, exampleSecret, "").Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := awsiot.PresignWebSocketURL(ctx, host, "eu-west-1", creds, at)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "wss" || u.Host != host || u.Path != "/mqtt" || q.Get("X-Amz-Signature") != want ||
		q.Get("X-Amz-Credential") != exampleKeyID+"/20261201/eu-west-1/iotdevicegateway/aws4_request" || q.Get("X-Amz-SignedHeaders") != "host" {
		t.Fatalf("signed URL %s\nwant signature %s", signed, want)
	}
	creds.SessionToken = "FQoGZXIvYXdzE+/token=="
	withToken, err := awsiot.PresignWebSocketURL(ctx, host, "eu-west-1", creds, at)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(withToken, signed+"&X-Amz-Security-Token=") {
		t.Fatalf("the token is not appended after signing:\n%s\n%s", withToken, signed)
	}
	if tu, _ := url.Parse(withToken); tu.Query().Get("X-Amz-Security-Token") != creds.SessionToken {
		t.Fatalf("token %q", tu.Query().Get("X-Amz-Security-Token"))
	}
	if _, err := awsiot.PresignWebSocketURL(ctx, host, "", creds, at); err == nil {
		t.Fatal("signed without a region")
	}
}

// Credentials from the environment and from a shared credentials file, read when a connection
// is signed.
func TestCredentialSources(t *testing.T) {
	ctx := context.Background()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
	t.Setenv("AWS_SESSION_TOKEN", "envtoken")
	c, err := awsiot.EnvCredentials().Retrieve(ctx)
	if err != nil || c.AccessKeyID != "AKIDENV" || c.SecretAccessKey != "envsecret" || c.SessionToken != "envtoken" {
		t.Fatalf("env: %+v %v", c, err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	if _, err := awsiot.EnvCredentials().Retrieve(ctx); err == nil {
		t.Fatal("env credentials without a key ID")
	}
	f := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(f, []byte("[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key = defsecret\n\n[dev]\naws_access_key_id = AKIDDEV\naws_secret_access_key = devsecret\n\n[sso]\nsso_start_url = https://example.invalid/start\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_PROFILE", "")
	for profile, want := range map[string]string{"": "AKIDDEF", "dev": "AKIDDEV"} {
		c, err := awsiot.SharedCredentials(profile, f).Retrieve(ctx)
		if err != nil || c.AccessKeyID != want {
			t.Fatalf("profile %q: %+v %v", profile, c, err)
		}
	}
	if _, err := awsiot.SharedCredentials("sso", f).Retrieve(ctx); err == nil || !strings.Contains(err.Error(), "not followed") {
		t.Fatalf("an SSO profile: %v", err)
	}
	if _, err := awsiot.SharedCredentials("nope", f).Retrieve(ctx); err == nil {
		t.Fatal("a missing profile")
	}
}

// MQTT over a SigV4-signed WebSocket, end to end: a TLS front end checks each upgrade request's
// signature against its Host header (as AWS does) and passes good ones to the embedded broker;
// publish and receive work over it, each connection is signed at its own time, and a
// configuration without credentials or with a certificate is refused before dialling.
func TestWebSocketSigV4(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{WebSockets: true})
	backend := &url.URL{Scheme: "http", Host: b.WSAddr}
	var mu sync.Mutex
	var dates []string
	proxy := httputil.NewSingleHostReverseProxy(backend)
	front := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		at, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
		creds, _ := awsiot.StaticCredentials(exampleKeyID, exampleSecret, "").Retrieve(r.Context())
		again, err2 := awsiot.PresignWebSocketURL(r.Context(), r.Host, "eu-west-1", creds, at)
		if err != nil || err2 != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		want, _ := url.Parse(again)
		if r.URL.Path != "/mqtt" || q.Get("X-Amz-Signature") != want.Query().Get("X-Amz-Signature") || q.Get("X-Amz-Security-Token") != "tok+/=" {
			http.Error(w, "Forbidden", http.StatusForbidden)
			return
		}
		mu.Lock()
		dates = append(dates, q.Get("X-Amz-Date"))
		mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: front.Certificate().Raw})

	clock := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	cfg := awsiot.Config{Endpoint: front.Listener.Addr().String(), ThingName: "app", Region: "eu-west-1", WebSocket: true,
		Credentials: awsiot.StaticCredentials(exampleKeyID, exampleSecret, "tok+/="), RootCAs: []pki.Source{pki.BytesSource(caPEM, "front")},
		SignTime: func() time.Time { mu.Lock(); defer mu.Unlock(); clock = clock.Add(time.Minute); return clock },
		Base:     fennec.Config{DisableReconnect: true}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 2; i++ {
		c, err := awsiot.Connect(ctx, cfg)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		got := make(chan string, 1)
		if _, err := c.Subscribe(ctx, func(m *fennec.Message) { got <- string(m.Payload) }, packet.Subscription{Filter: "ws/t", QoS: 1}); err != nil {
			t.Fatal(err)
		}
		if err := c.Publish(ctx, &fennec.Message{Topic: "ws/t", QoS: 1, Payload: []byte("over sigv4")}); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-got:
			if p != "over sigv4" {
				t.Fatalf("received %q", p)
			}
		case <-ctx.Done():
			t.Fatal("nothing received over the signed WebSocket")
		}
		c.Disconnect(ctx)
	}
	mu.Lock()
	if len(dates) != 2 || dates[0] == dates[1] {
		t.Fatalf("signing dates %q: want one per connection", dates)
	}
	mu.Unlock()

	// wrong credentials: the front end refuses the upgrade, the client says so
	bad := cfg
	bad.Credentials = awsiot.StaticCredentials(exampleKeyID, "wrong", "tok+/=")
	if _, err := awsiot.Connect(ctx, bad); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("a wrong secret: %v", err)
	}
	for _, c := range []awsiot.Config{
		{Endpoint: cfg.Endpoint, ThingName: "app", Region: "eu-west-1", WebSocket: true},
		{Endpoint: cfg.Endpoint, ThingName: "app", Region: "eu-west-1", WebSocket: true, Credentials: cfg.Credentials, Cert: pki.FileSource(b.ClientCert)},
		{Endpoint: cfg.Endpoint, ThingName: "app", WebSocket: true, Credentials: cfg.Credentials},
		{Endpoint: "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com:8883", ThingName: "app", WebSocket: true, Credentials: cfg.Credentials},
	} {
		var ce *awsiot.ConfigError
		if _, err := c.ClientConfig(); !errors.As(err, &ce) {
			t.Errorf("%+v: %v, want a ConfigError", c, err)
		}
	}
	// the real endpoint: wss on 443 with the region from its name, and no x-amzn-mqtt-ca ALPN
	fc, err := (&awsiot.Config{Endpoint: "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com", ThingName: "app", WebSocket: true, Credentials: cfg.Credentials}).ClientConfig()
	if err != nil || fc.Server != "wss://a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com:443" || fc.WebSocketPathFunc == nil || len(fc.TLSConfig.NextProtos) != 0 || len(fc.TLSConfig.Certificates) != 0 {
		t.Fatalf("%+v %v", fc, err)
	}
	path, err := fc.WebSocketPathFunc(ctx)
	if err != nil || !strings.HasPrefix(path, "/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="+exampleKeyID+"%2F") || !strings.Contains(path, "%2Feu-west-1%2Fiotdevicegateway%2F") {
		t.Fatalf("path %q %v", path, err)
	}
}
