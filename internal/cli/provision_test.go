package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
)

// TestProvisionCommand: fennec provision with a claim certificate gets a device certificate
// (key made here, then by AWS), writes it with the key at 0600, and the device then connects
// with it as its thing; an existing key is not replaced without --force; a missing parameter
// exits 4 with the fix.
func TestProvisionCommand(t *testing.T) {
	isolate(t)
	pol, err := broker.ParsePolicy([]byte(`{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:us-east-1:123456789012:client/*"},
 {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/$aws/certificates/*", "arn:aws:iot:us-east-1:123456789012:topic/$aws/provisioning-templates/*"]},
 {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": ["arn:aws:iot:us-east-1:123456789012:topicfilter/$aws/certificates/*", "arn:aws:iot:us-east-1:123456789012:topicfilter/$aws/provisioning-templates/*"]},
 {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive", "iot:Subscribe"], "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/things/${iot:Connection.Thing.ThingName}/*", "arn:aws:iot:us-east-1:123456789012:topicfilter/things/${iot:Connection.Thing.ThingName}/*"]}
]}`))
	if err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, brokertest.Options{Clients: []string{"claim"}, FleetProvisioning: true, AWS: &broker.AWS{Policy: pol,
		Templates: []broker.ProvisioningTemplate{{Name: "fleet", ThingName: "sensor-{SerialNumber}", Parameters: []string{"SerialNumber"}}}}})
	h, p := cmdutil.SplitHostPort(b.TLSAddr)
	conn := []string{"-h", h, "-p", fmt.Sprint(p), "--servername", "localhost", "--cafile", b.CAFile, "--aws"}
	claim := append([]string{"--cert", b.Files.ClientCert["claim"], "--key", b.Files.ClientKey["claim"]}, conn...)
	dir := filepath.Join(t.TempDir(), "device")
	for i, keys := range [][]string{nil, {"--aws-keys"}} {
		serial := fmt.Sprint(100 + i)
		args := append(append([]string{"provision", "--template", "fleet", "--param", "SerialNumber=" + serial, "--out-dir", dir, "--json"}, keys...), claim...)
		code, out, errout := run(t, args...)
		var res struct{ Thing, Certificate, Key, KeyMadeBy string }
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Thing != "sensor-"+serial {
			t.Fatalf("provision %v: exit %d\n%s%s", keys, code, out, errout)
		}
		fi, err := os.Stat(res.Key)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file %s: %v %v", res.Key, fi.Mode(), err)
		}
		code, out, errout = run(t, append([]string{"pub", "--cert", res.Certificate, "--key", res.Key, "-i", res.Thing, "-t", "things/" + res.Thing + "/hello", "-m", "hi", "-q", "1"}, conn...)...)
		if code != 0 {
			t.Fatalf("pub as the provisioned thing: exit %d\n%s%s", code, out, errout)
		}
		if code, out, errout = run(t, args...); code != cmdutil.ExitError || !strings.Contains(errout, "--force") {
			t.Fatalf("provision over an existing key: exit %d\n%s%s", code, out, errout)
		}
	}
	code, out, errout := run(t, append([]string{"provision", "--template", "fleet", "--out-dir", dir}, claim...)...)
	if code != cmdutil.ExitRefused || !strings.Contains(errout, "InvalidParameters") || !strings.Contains(errout, "--param KEY=VALUE") {
		t.Fatalf("provision without the parameter: exit %d\n%s%s", code, out, errout)
	}
	if code, _, errout = run(t, append([]string{"provision"}, claim...)...); code != cmdutil.ExitUsage {
		t.Fatalf("provision without --template: exit %d %s", code, errout)
	}
}
