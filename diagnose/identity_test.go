package diagnose_test

import (
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/diagnose"
	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
	"github.com/fennec-mqtt/fennec/internal/tlstest"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

// mosquitto with use_identity_as_username takes the username from the client certificate's
// common name. A certificate without one is refused at CONNECT (MQTT 5: 0x86, 3.1.1: 4); one
// whose common name the ACL does not name connects and is refused the topic (MQTT 5: PUBACK
// 0x87; 3.1.1: the message is acknowledged and dropped). Each is named with the user the broker
// checked and the ACL line that lets it in, 20 times in a row.
func TestDoctorUseIdentityAsUsername(t *testing.T) {
	f := tlstest.Get(t)
	dir := t.TempDir()
	acl := tlstest.Write(t, dir, "acl", []byte("user someone-else\ntopic readwrite #\n"))
	m := mosquittotest.Start(t, mosquittotest.Options{Config: []string{"acl_file " + acl}, TLS: &mosquittotest.TLS{
		CAFile: tlstest.Write(t, dir, "ca.pem", f.CA.CertPEM), CertFile: tlstest.Write(t, dir, "s.pem", f.Server.CertPEM),
		KeyFile: tlstest.Write(t, dir, "sk.pem", f.Server.KeyPEM), RequireCertificate: true, UseIdentityAsUsername: true}})
	noCN, err := devpki.Issue(devpki.CertSpec{Client: true}, f.CA)
	if err != nil {
		t.Fatal(err)
	}
	ca := tlstest.Write(t, dir, "ca2.pem", f.CA.CertPEM)
	target := func(c *devpki.Issued, name string, v packet.Version) diagnose.Target {
		tg := tlsTarget(t, m.TLSAddr, ca, tlstest.Write(t, dir, name+".pem", c.CertPEM), tlstest.Write(t, dir, name+"-key.pem", c.KeyPEM))
		tg.Version = v
		return tg
	}
	expectCause(t, target(noCN, "nocn", packet.V5), runs, diagnose.StepMQTT, diagnose.CauseConnackRefused,
		"0x86", "TLS succeeded", "has no common name", "use_identity_as_username", "issue the client certificate with a common name")
	expectCause(t, target(noCN, "nocn", packet.V311), runs, diagnose.StepMQTT, diagnose.CauseConnackRefused,
		"(0x04)", "has no common name")
	expectCause(t, target(f.Client, "dev", packet.V5), runs, diagnose.StepRoundTrip, diagnose.CausePublishRefused,
		"0x87", `checks the user "device-1"`, `"user device-1" then "topic readwrite fennec/doctor/`)
	tg := target(f.Client, "dev", packet.V311)
	tg.Timeout = 700 * time.Millisecond
	expectCause(t, tg, runs, diagnose.StepRoundTrip, diagnose.CauseNoEcho,
		`checks the user "device-1"`, "acknowledges it", `"user device-1"`)
}
