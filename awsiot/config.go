package awsiot

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/pki"
)

// ALPN is the protocol AWS IoT Core requires for MQTT with a client certificate on port 443
// (AWS IoT Developer Guide, "Device communication protocols", port mappings).
const ALPN = "x-amzn-mqtt-ca"

// DefaultKeepAlive is the keep-alive a Config gets when it names none: the AWS IoT Device
// SDKs' 60 s; AWS accepts 30–1200 s.
const DefaultKeepAlive = 60 * time.Second

// Config describes a device's connection to AWS IoT Core.
type Config struct {
	// Endpoint is the account's device data endpoint, "<prefix>-ats.iot.<region>.amazonaws.com"
	// (aws iot describe-endpoint --endpoint-type iot:Data-ATS). It may carry ":port"; an IP
	// address or localhost (the embedded broker's AWS emulation) is accepted too.
	Endpoint string
	// Port is 8883 (zero) or 443, on which ALPN x-amzn-mqtt-ca is offered. Another port is
	// only for emulators.
	Port int
	// ThingName is the thing the certificate is attached to; the Shadow topics use it.
	ThingName string
	// ClientID is the MQTT client ID (zero: ThingName). AWS policies usually name it
	// (iot:Connect on client/<id>), and two connections with one ID take over each other.
	ClientID string
	// Cert and Key are the device certificate and private key: files or bytes, PEM or DER (or
	// a C array), as pki loads them. Passphrase decrypts an encrypted key.
	Cert, Key  pki.Source
	Passphrase pki.PassphraseFunc
	// RootCAs verify the endpoint; zero: the embedded Amazon Root CA 1 and Root CA 3.
	RootCAs []pki.Source
	// ServerName is the SNI and the name verified (zero: the endpoint's host). AWS IoT Core
	// needs SNI to find the account's endpoint.
	ServerName string
	// Version is the MQTT version (zero: 5). AWS IoT Core supports 3.1.1 and 5.
	Version packet.Version
	// KeepAlive is 30 s to 1200 s (zero: DefaultKeepAlive).
	KeepAlive time.Duration
	// CleanStart false with SessionExpiry asks for a persistent session (AWS keeps it 1 hour
	// by default).
	CleanStart    bool
	SessionExpiry time.Duration
	// WebSocket connects over MQTT over WebSocket (wss://<endpoint>/mqtt, port 443) signed with
	// SigV4 from Credentials instead of with a device certificate.
	WebSocket bool
	// Credentials sign WebSocket connections: StaticCredentials, EnvCredentials,
	// SharedCredentials or any aws.CredentialsProvider. They are retrieved for each connection.
	Credentials aws.CredentialsProvider
	// Region is the endpoint's region for the signature (zero: read from the endpoint name).
	Region string
	// SignTime is the clock of the signature (zero: time.Now); for tests.
	SignTime func() time.Time
	// CustomAuth connects through a custom authorizer instead of with a device certificate.
	CustomAuth *CustomAuth
	// Limits are checked before sending (zero: DefaultLimits).
	Limits *Limits
	// Base is copied into the client configuration for everything else (handlers, store,
	// reconnect policy, Dial, Logger); its Server, ClientID, TLS and session fields are set
	// from this Config.
	Base fennec.Config
}

// Endpoint facts.

// IsEndpoint reports whether host is an AWS IoT Core data endpoint (*.iot.<region>.amazonaws.com,
// also .com.cn).
func IsEndpoint(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	return strings.Contains(h, ".iot.") && (strings.HasSuffix(h, ".amazonaws.com") || strings.HasSuffix(h, ".amazonaws.com.cn"))
}

// IsLegacyEndpoint reports whether host is a pre-ATS endpoint (no "-ats" in its first label):
// those serve a Symantec/VeriSign certificate that the Amazon roots do not verify.
func IsLegacyEndpoint(host string) bool {
	if !IsEndpoint(host) {
		return false
	}
	first, _, _ := strings.Cut(host, ".")
	return !strings.HasSuffix(strings.ToLower(first), "-ats")
}

// Region returns the region of an endpoint ("eu-west-1"), or "".
func Region(host string) string {
	parts := strings.Split(strings.ToLower(host), ".")
	for i, p := range parts {
		if p == "iot" && i+1 < len(parts) {
			return parts[i+1]
		}
	}
	return ""
}

// ConfigError is a Config that cannot connect as it is.
type ConfigError struct {
	Field string
	Msg   string
}

func (e *ConfigError) Error() string { return "awsiot: " + e.Field + ": " + e.Msg }

// host and port of the endpoint.
func (c *Config) hostPort() (string, int, error) {
	host, port := c.Endpoint, c.Port
	if strings.Contains(host, "://") {
		return "", 0, &ConfigError{"Endpoint", "a host name, not a URL: " + host}
	}
	if h, p, err := net.SplitHostPort(c.Endpoint); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil {
			return "", 0, &ConfigError{"Endpoint", fmt.Sprintf("port %q is not a number", p)}
		}
		if port != 0 && port != n {
			return "", 0, &ConfigError{"Port", fmt.Sprintf("%d, but the endpoint says %d", port, n)}
		}
		host, port = h, n
	}
	if host == "" {
		return "", 0, &ConfigError{"Endpoint", "empty: give the device data endpoint (aws iot describe-endpoint --endpoint-type iot:Data-ATS)"}
	}
	if port == 0 {
		port = 8883
		if c.WebSocket || c.CustomAuth != nil {
			port = 443
		}
	}
	if IsEndpoint(host) && c.WebSocket && port != 443 {
		return "", 0, &ConfigError{"Port", fmt.Sprintf("%d: AWS IoT Core serves MQTT over WebSocket on 443", port)}
	}
	if IsEndpoint(host) && port != 8883 && port != 443 {
		return "", 0, &ConfigError{"Port", fmt.Sprintf("%d: AWS IoT Core serves MQTT with certificates on 8883, and on 443 with ALPN %s", port, ALPN)}
	}
	return host, port, nil
}

// Warnings lists what will work badly or not at all, without failing: a legacy endpoint
// checked against the Amazon roots.
func (c *Config) Warnings() []string {
	host, _, err := c.hostPort()
	if err != nil {
		return nil
	}
	var w []string
	if IsLegacyEndpoint(host) && len(c.RootCAs) == 0 {
		first, rest, _ := strings.Cut(host, ".")
		w = append(w, fmt.Sprintf("%s is a legacy (VeriSign) endpoint, which the Amazon root CAs do not verify: use the ATS endpoint %s-ats.%s (aws iot describe-endpoint --endpoint-type iot:Data-ATS)", host, first, rest))
	}
	return w
}

// ClientConfig returns the client configuration for c: TLS with SNI, the Amazon roots, ALPN on
// 443, the client ID and keep-alive checked against AWS's limits.
func (c *Config) ClientConfig() (fennec.Config, error) {
	host, port, err := c.hostPort()
	if err != nil {
		return fennec.Config{}, err
	}
	lim := c.limits()
	id := c.ClientID
	if id == "" {
		id = c.ThingName
	}
	if id == "" {
		return fennec.Config{}, &ConfigError{"ClientID", "empty: give ThingName or ClientID (the policy's iot:Connect names it)"}
	}
	if err := lim.CheckClientID(id); err != nil {
		return fennec.Config{}, err
	}
	ka := c.KeepAlive
	if ka == 0 {
		ka = DefaultKeepAlive
	}
	if ka < MinKeepAlive || ka > MaxKeepAlive {
		return fennec.Config{}, &LimitError{Limit: "keep-alive", Value: int(ka / time.Second), Max: int(MaxKeepAlive / time.Second),
			Msg: fmt.Sprintf("keep-alive %s is outside AWS IoT Core's range of 30 s to 1200 s", ka)}
	}
	if err := c.checkAuth(); err != nil {
		return fennec.Config{}, err
	}
	tc, err := c.tlsConfig(host, port)
	if err != nil {
		return fennec.Config{}, err
	}
	cfg := c.Base
	cfg.Server = "mqtts://" + net.JoinHostPort(host, strconv.Itoa(port))
	if c.WebSocket {
		cfg.Server = "wss://" + net.JoinHostPort(host, strconv.Itoa(port))
		if cfg.WebSocketPathFunc, err = c.signedPath(host, port); err != nil {
			return fennec.Config{}, err
		}
	}
	cfg.ClientID, cfg.TLSConfig, cfg.KeepAlive = id, tc, ka
	cfg.Version = c.Version
	if cfg.Version == 0 {
		cfg.Version = packet.V5
	}
	cfg.CleanStart, cfg.SessionExpiry = c.CleanStart, c.SessionExpiry
	if ca := c.CustomAuth; ca != nil {
		user, err := ca.username()
		if err != nil {
			return fennec.Config{}, err
		}
		cfg.Username, cfg.Password = user, ca.Password
	}
	return cfg, nil
}

// checkAuth checks that one way of authenticating is configured: SigV4 over WebSocket, a
// custom authorizer, or a device certificate.
func (c *Config) checkAuth() error {
	if c.WebSocket {
		if c.Credentials == nil {
			return &ConfigError{"Credentials", "WebSocket connections are signed with IAM credentials: StaticCredentials, EnvCredentials or SharedCredentials"}
		}
		if c.Cert.File != "" || c.Cert.Data != nil {
			return &ConfigError{"Cert", "WebSocket connections authenticate with SigV4, not a device certificate: leave WebSocket false to use the certificate on 8883 or 443"}
		}
	} else if c.CustomAuth != nil {
		if c.Cert.File != "" || c.Cert.Data != nil {
			return &ConfigError{"Cert", "a custom authorizer authenticates the connection, not a device certificate: give one or the other"}
		}
		if c.CustomAuth.Authorizer == "" {
			return &ConfigError{"CustomAuth.Authorizer", "empty: the custom authorizer's name"}
		}
	} else if c.Cert.File == "" && c.Cert.Data == nil {
		return &ConfigError{"Cert", "no device certificate: AWS IoT Core authenticates MQTT on 8883 and 443 with one (or set WebSocket and Credentials for SigV4)"}
	}
	return nil
}

// tlsConfig verifies AWS IoT Core's server with the Amazon roots (or RootCAs) and presents
// the device certificate; on port 443 it asks for the ALPN protocol AWS routes MQTT by.
func (c *Config) tlsConfig(host string, port int) (*tls.Config, error) {
	cas := c.RootCAs
	if len(cas) == 0 {
		cas = []pki.Source{pki.BytesSource(RootCA1PEM, "Amazon Root CA 1"), pki.BytesSource(RootCA3PEM, "Amazon Root CA 3")}
	}
	opts := pki.ClientOptions{CAs: cas, Cert: c.Cert, Key: c.Key, Passphrase: c.Passphrase, ServerName: host, MinVersion: 0}
	if c.ServerName != "" {
		opts.ServerName = c.ServerName
	}
	switch {
	case port == 443 && c.CustomAuth != nil:
		opts.NextProtos = []string{CustomAuthALPN}
	case port == 443 && !c.WebSocket:
		opts.NextProtos = []string{ALPN}
	}
	return pki.ClientConfig(opts)
}

// signedPath returns the function that signs each WebSocket connection's request path with
// SigV4, with the credentials of the moment.
func (c *Config) signedPath(host string, port int) (func(context.Context) (string, error), error) {
	region := c.Region
	if region == "" {
		region = Region(host)
	}
	if region == "" {
		return nil, &ConfigError{"Region", "cannot read it from " + host + ": set Region (it is part of the signature)"}
	}
	hostHeader := host
	if port != 443 {
		hostHeader = net.JoinHostPort(host, strconv.Itoa(port))
	}
	creds, clock := c.Credentials, c.SignTime
	if clock == nil {
		clock = time.Now
	}
	return func(ctx context.Context) (string, error) {
		cr, err := creds.Retrieve(ctx)
		if err != nil {
			return "", fmt.Errorf("awsiot: credentials: %w", err)
		}
		signed, err := PresignWebSocketURL(ctx, hostHeader, region, cr, clock())
		if err != nil {
			return "", err
		}
		u, err := url.Parse(signed)
		if err != nil {
			return "", err
		}
		return u.RequestURI(), nil
	}, nil
}

func (c *Config) limits() Limits {
	if c.Limits != nil {
		return *c.Limits
	}
	return DefaultLimits
}

// Client is a fennec client connected to AWS IoT Core whose Publish and Subscribe check AWS's
// limits before sending. Everything else is the embedded *fennec.Client.
type Client struct {
	*fennec.Client
	Thing string
	guard *guard
}

// Connect connects to AWS IoT Core. The Config's warnings go to its Base.Logger.
func Connect(ctx context.Context, c Config) (*Client, error) {
	cfg, err := c.ClientConfig()
	if err != nil {
		return nil, err
	}
	if cfg.Logger != nil {
		for _, w := range c.Warnings() {
			cfg.Logger.Warn(w)
		}
	}
	cl, err := fennec.Connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Client{Client: cl, Thing: c.ThingName, guard: newGuard(c.limits())}, nil
}

// Publish checks m against AWS's limits (topic, payload, QoS, publish rate), then publishes.
func (c *Client) Publish(ctx context.Context, m *fennec.Message) error {
	if err := c.guard.publish(m, time.Now()); err != nil {
		return err
	}
	return c.Client.Publish(ctx, m)
}

// PublishAsync checks m as Publish does; a message over a limit gets a token that has failed.
func (c *Client) PublishAsync(ctx context.Context, m *fennec.Message) *fennec.Token {
	if err := c.guard.publish(m, time.Now()); err != nil {
		return fennec.FailedToken(err)
	}
	return c.Client.PublishAsync(ctx, m)
}

// Subscribe checks the filters (at most 8 per SUBSCRIBE, 50 per connection, topic limits, no
// QoS 2), then subscribes.
func (c *Client) Subscribe(ctx context.Context, h fennec.MessageHandler, subs ...packet.Subscription) (*packet.Suback, error) {
	if err := c.guard.subscribe(subs); err != nil {
		return nil, err
	}
	ack, err := c.Client.Subscribe(ctx, h, subs...)
	if err != nil {
		c.guard.unsubscribe(filters(subs))
	}
	return ack, err
}

// Unsubscribe unsubscribes and frees the filters' places in the per-connection count.
func (c *Client) Unsubscribe(ctx context.Context, filters ...string) error {
	err := c.Client.Unsubscribe(ctx, filters...)
	if err == nil || errors.Is(err, fennec.ErrClosed) {
		c.guard.unsubscribe(filters)
	}
	return err
}

func filters(subs []packet.Subscription) []string {
	out := make([]string, len(subs))
	for i, s := range subs {
		out[i] = s.Filter
	}
	return out
}
