package awsiot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// MQTT over WebSocket with Signature Version 4: the device or application authenticates with
// IAM credentials instead of a certificate, on wss://<endpoint>/mqtt (port 443). The URL is
// presigned for the service "iotdevicegateway"; the session token of temporary credentials is
// appended after signing, as AWS IoT expects.
// Source: https://docs.aws.amazon.com/iot/latest/developerguide/protocols.html#mqtt-ws
const (
	// SigV4Service is the service name WebSocket URLs are signed for.
	SigV4Service = "iotdevicegateway"
	// SigV4Expires is how long a signed URL is valid (the URL is signed again for each
	// connection, so a reconnect never uses an expired one).
	SigV4Expires = 24 * time.Hour
)

// emptyHash is the SHA-256 of the empty payload of the WebSocket upgrade request.
var emptyHash = func() string { h := sha256.Sum256(nil); return hex.EncodeToString(h[:]) }()

// StaticCredentials are fixed IAM credentials (sessionToken "" for long-term keys).
func StaticCredentials(accessKeyID, secretAccessKey, sessionToken string) aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(accessKeyID, secretAccessKey, sessionToken)
}

// EnvCredentials reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN when a
// connection is signed.
func EnvCredentials() aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		env, err := config.NewEnvConfig()
		if err != nil {
			return aws.Credentials{}, err
		}
		if !env.Credentials.HasKeys() {
			return aws.Credentials{}, errors.New("awsiot: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set")
		}
		c := env.Credentials
		c.Source = "environment"
		return c, nil
	})
}

// SharedCredentials reads the static keys of profile ("" : AWS_PROFILE, else "default") from
// the shared credentials and config files (files: zero for ~/.aws/credentials and
// ~/.aws/config, or AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE) when a connection is
// signed. Profiles that get their keys from SSO, a role or a process are not followed: nothing
// here contacts AWS.
func SharedCredentials(profile string, files ...string) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(ctx context.Context) (aws.Credentials, error) {
		env, _ := config.NewEnvConfig()
		p := profile
		if p == "" {
			p = env.SharedConfigProfile
		}
		if p == "" {
			p = "default"
		}
		sc, err := config.LoadSharedConfigProfile(ctx, p, func(o *config.LoadSharedConfigOptions) {
			if len(files) > 0 {
				o.CredentialsFiles, o.ConfigFiles = files, files
			} else {
				if env.SharedCredentialsFile != "" {
					o.CredentialsFiles = []string{env.SharedCredentialsFile}
				}
				if env.SharedConfigFile != "" {
					o.ConfigFiles = []string{env.SharedConfigFile}
				}
			}
		})
		if err != nil {
			return aws.Credentials{}, fmt.Errorf("awsiot: shared credentials: %w", err)
		}
		if !sc.Credentials.HasKeys() {
			return aws.Credentials{}, fmt.Errorf("awsiot: profile %q has no aws_access_key_id and aws_secret_access_key (SSO, role and process profiles are not followed)", p)
		}
		c := sc.Credentials
		c.Source = "shared config profile " + p
		return c, nil
	})
}

// PresignWebSocketURL returns the wss:// URL of host's MQTT endpoint signed with creds at t
// for region. host is what the Host header will carry (no port for 443).
func PresignWebSocketURL(ctx context.Context, host, region string, creds aws.Credentials, t time.Time) (string, error) {
	if region == "" {
		return "", &ConfigError{"Region", "empty: the region the endpoint is in (e.g. eu-west-1) is part of the signature"}
	}
	if !creds.HasKeys() {
		return "", &ConfigError{"Credentials", "no access key ID and secret access key"}
	}
	u := &url.URL{Scheme: "https", Host: host, Path: "/mqtt",
		RawQuery: url.Values{"X-Amz-Expires": {fmt.Sprint(int64(SigV4Expires / time.Second))}}.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	signed, _, err := v4.NewSigner().PresignHTTP(ctx, creds, req, emptyHash, SigV4Service, region, t,
		func(o *v4.SignerOptions) { o.DisableSessionToken = true })
	if err != nil {
		return "", fmt.Errorf("awsiot: signing the WebSocket URL: %w", err)
	}
	if creds.SessionToken != "" {
		signed += "&X-Amz-Security-Token=" + url.QueryEscape(creds.SessionToken)
	}
	return "wss" + signed[len("https"):], nil
}
