package awsiot_test

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/fennec-mqtt/fennec/awsiot"
	"github.com/fennec-mqtt/fennec/pki"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

// A device's configuration for AWS IoT Core on port 443: ALPN x-amzn-mqtt-ca, SNI, the Amazon
// roots, MQTT 5 and a keep-alive AWS accepts.
func ExampleConfig_ClientConfig() {
	cfg := awsiot.Config{
		Endpoint:  "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com",
		Port:      443,
		ThingName: "dev1",
		Cert:      pki.FileSource("testdata/dev1.cert.pem"),
		Key:       pki.FileSource("testdata/dev1.private.key"),
	}
	fc, err := cfg.ClientConfig()
	if err != nil {
		// the files do not exist here: ClientConfig loads them
		fmt.Println(strings.Contains(err.Error(), "dev1.cert.pem"))
	}
	cfg.Cert, cfg.Key = pki.BytesSource(examplePEM(), "cert"), pki.BytesSource(exampleKey(), "key")
	if fc, err = cfg.ClientConfig(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(fc.Server, fc.ClientID, fc.TLSConfig.ServerName, fc.TLSConfig.NextProtos, fc.KeepAlive, fc.Version)
	// Output:
	// true
	// mqtts://a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com:443 dev1 a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com [x-amzn-mqtt-ca] 1m0s 5.0
}

// AWS's limits are checked before anything is sent.
func ExampleLimits_CheckTopic() {
	err := awsiot.DefaultLimits.CheckTopic("a/b/c/d/e/f/g/h/i", false)
	fmt.Println(err != nil)
	fmt.Println(awsiot.DefaultLimits.CheckTopic("$aws/rules/myrule/a/b/c/d/e/f/g", false) == nil)
	// Output:
	// true
	// true
}

// A WebSocket URL signed with SigV4 at a fixed time (the connection signs its own at connect).
func ExamplePresignWebSocketURL() {
	creds, _ := awsiot.StaticCredentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "").Retrieve(context.Background())
	u, err := awsiot.PresignWebSocketURL(context.Background(), "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com", "eu-west-1", creds, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.ReplaceAll(u, "&", "\n&"))
	// Output:
	// wss://a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256
	// &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261201%2Feu-west-1%2Fiotdevicegateway%2Faws4_request
	// &X-Amz-Date=20261201T000000Z
	// &X-Amz-Expires=86400
	// &X-Amz-SignedHeaders=host
	// &X-Amz-Signature=2e9907db92ccc9039ddfdef5c5c9135fe3b48b6e0ac9bf1af75b04e7b66ec10f
}

var exampleIssued *devpki.Issued

func exampleDevice() *devpki.Issued {
	if exampleIssued == nil {
		ca, err := devpki.Issue(devpki.CertSpec{CommonName: "example CA", IsCA: true}, nil)
		if err != nil {
			log.Fatal(err)
		}
		if exampleIssued, err = devpki.Issue(devpki.CertSpec{CommonName: "dev1", Client: true}, ca); err != nil {
			log.Fatal(err)
		}
	}
	return exampleIssued
}

func examplePEM() []byte { return exampleDevice().CertPEM }
func exampleKey() []byte { return exampleDevice().KeyPEM }
