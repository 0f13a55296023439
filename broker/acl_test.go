package broker_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/pki/devpki"
)

func aclBroker(t *testing.T) *brokertest.Broker {
	t.Helper()
	hash, err := broker.HashPassword("s3cret", 1000)
	if err != nil {
		t.Fatal(err)
	}
	acl, err := broker.ParseACL([]byte(`{
		"anonymous": false,
		"users": [
			{"name": "fennec-client", "publish": ["sensors/${clientid}/#"], "subscribe": ["cmd/#"]},
			{"name": "alice", "password": "` + hash + `", "publish": ["chat/#"], "subscribe": ["chat/+"]}
		]
	}`))
	if err != nil {
		t.Fatal(err)
	}
	return brokertest.Start(t, brokertest.Options{ACL: acl, Clients: []string{"fennec-client", "stranger"}})
}

// The certificate's CN is the identity the ACL file's rules apply to.
func TestACLCertificateIdentity(t *testing.T) {
	b := aclBroker(t)
	c := dialTLS(t, b.TLSAddr, b.ClientTLSConfig("fennec-client"))
	if ack := connectRaw(t, c, connect5("dev1", 60)); ack[3] != 0 {
		t.Fatalf("CONNACK reason %#x", ack[3])
	}
	steps := []struct {
		pkt  []byte
		want byte
	}{
		{publish(true, "sensors/dev1/temp", 1, 1, []byte("21")), 0x00},
		{publish(true, "sensors/dev2/temp", 1, 2, []byte("21")), 0x87}, // ${clientid} is dev1
		{publish(true, "cmd/dev1", 1, 3, nil), 0x87},
	}
	for _, s := range steps {
		if _, err := c.Write(s.pkt); err != nil {
			t.Fatal(err)
		}
		p, err := readPacket(c)
		if err != nil || p.kind() != 4 {
			t.Fatalf("want PUBACK, got %v %v", p, err)
		}
		if got := ackCode(p); got != s.want {
			t.Fatalf("PUBACK reason %#x, want %#x", got, s.want)
		}
	}
	for _, s := range []struct {
		filter string
		want   byte
	}{{"cmd/dev1", 1}, {"cmd/#", 1}, {"#", 0x87}, {"sensors/dev1/temp", 0x87}} {
		if _, err := c.Write(subscribe(true, 9, s.filter, 1)); err != nil {
			t.Fatal(err)
		}
		p, err := readPacket(c)
		if err != nil || p.kind() != 9 {
			t.Fatalf("want SUBACK, got %v %v", p, err)
		}
		if got := subackCodes(true, p); len(got) != 1 || got[0] != s.want {
			t.Fatalf("SUBACK for %q: % x, want %#x", s.filter, got, s.want)
		}
	}
}

// A certificate identity the file does not list, with no default rules, may connect but do nothing.
func TestACLUnlistedIdentity(t *testing.T) {
	b := aclBroker(t)
	c := dialTLS(t, b.TLSAddr, b.ClientTLSConfig("stranger"))
	connectRaw(t, c, connect5("s", 60))
	c.Write(publish(true, "chat/x", 1, 1, nil))
	if p, err := readPacket(c); err != nil || ackCode(p) != 0x87 {
		t.Fatalf("PUBACK %v %v, want 0x87", p, err)
	}
}

// Username and password against the hash in the file; anonymous access is off.
func TestACLPasswords(t *testing.T) {
	b := aclBroker(t)
	host, port := splitAddr(b.TCPAddr)
	ok := run(t, "mosquitto_pub", "-h", host, "-p", port, "-u", "alice", "-P", "s3cret", "-t", "chat/room", "-m", "hi", "-q", "1")
	if ok.code != 0 {
		t.Fatalf("alice with her password: %s", ok.out)
	}
	bad := run(t, "mosquitto_pub", "-h", host, "-p", port, "-u", "alice", "-P", "guess", "-t", "chat/room", "-m", "hi", "-V", "mqttv311")
	if bad.code == 0 {
		t.Fatalf("a wrong password was accepted: %s", bad.out)
	}
	c, err := net.Dial("tcp", b.TCPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ack := connectRaw(t, c, connect5("anon", 60)); ack[3] != 0x87 {
		t.Fatalf("anonymous CONNACK reason %#x, want 0x87 Not authorized", ack[3])
	}
	c311, err := net.Dial("tcp", b.TCPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c311.Close()
	if ack := connectRaw(t, c311, connect311("anon", 60)); ack[3] != 0x05 {
		t.Fatalf("anonymous 3.1.1 CONNACK return code %#x, want 0x05 not authorized", ack[3])
	}
}

// The iteration count is part of the hash, so CheckPassword needs no setting; a low count keeps
// the test quick (the default, PasswordIterations, takes seconds under the race detector).
func TestHashPassword(t *testing.T) {
	h, err := broker.HashPassword("pw", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h, "$1000$") {
		t.Fatalf("hash %q does not record its iteration count", h)
	}
	if !broker.CheckPassword(h, "pw") || broker.CheckPassword(h, "pW") || broker.CheckPassword("plain", "plain") {
		t.Fatal("CheckPassword disagrees with HashPassword")
	}
	h2, _ := broker.HashPassword("pw", 1000)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
}

func TestParseACLRejects(t *testing.T) {
	for _, doc := range []string{
		`{"users":[{"name":"a","publish":["a/#/b"]}]}`,
		`{"users":[{"name":"a","pasword":"x"}]}`,
		`{"users":[{"name":"a","password":"plaintext"}]}`,
		`{"users":[{"name":"a"},{"name":"a"}]}`,
	} {
		if _, err := broker.ParseACL([]byte(doc)); err == nil {
			t.Errorf("ParseACL accepted %s", doc)
		}
	}
}

// A PUBLISH that names its topic only through a topic alias is authorized on the aliased topic.
func TestACLTopicAlias(t *testing.T) {
	b := aclBroker(t)
	c := dialTLS(t, b.TLSAddr, b.ClientTLSConfig("fennec-client"))
	connectRaw(t, c, connect5("dev1", 60))
	// PUBLISH QoS 1: topic, packet ID, properties {Topic Alias 1}, payload.
	withAlias := func(topic string, id uint16) []byte {
		body := appendString(nil, topic)
		body = append(body, byte(id>>8), byte(id), 3, 0x23, 0, 1)
		return encodePacket(0x32, append(body, 'm'))
	}
	for i, topic := range []string{"sensors/dev1/temp", ""} {
		c.Write(withAlias(topic, uint16(i+1)))
		p, err := readPacket(c)
		if err != nil || p.kind() != 4 || ackCode(p) != 0 {
			t.Fatalf("PUBLISH %d (topic %q, alias 1): %v %v, want PUBACK success", i+1, topic, p, err)
		}
	}
}

// A client that sends CONNECT twice is disconnected, and the second CONNECT, which mochi logs,
// appears in the log without its password.
func TestPasswordNeverLogged(t *testing.T) {
	logs := &lockedBuffer{}
	b := brokertest.Start(t, brokertest.Options{LogCopy: logs})
	// CONNECT 3.1.1 with user name and password flags (0xC2: user, password, clean session).
	body := appendString(nil, "MQTT")
	body = append(body, 4, 0xC2, 0, 60)
	body = appendString(appendString(appendString(body, "twice"), "alice"), "pw-do-not-log")
	connect := encodePacket(0x10, body)
	c := dialTCP(t, b.TCPAddr)
	if ack := connectRaw(t, c, connect); ack[3] != 0 {
		t.Fatalf("CONNACK % x", ack)
	}
	c.Write(connect) // a protocol violation [MQTT-3.1.0-2]
	expectClosed(t, c)
	waitFor(t, "the second CONNECT in the log", func() bool { return strings.Contains(logs.String(), "error processing packet") })
	// A []byte is logged as its numbers: look for both forms.
	if l := logs.String(); strings.Contains(l, "pw-do-not-log") || strings.Contains(l, fmt.Sprint([]byte("pw-do-not-log"))) {
		t.Fatalf("the password is in the log:\n%s", logs)
	}
}

// A client certificate without common name is known by its first DNS name: the ACL's rules for
// that name apply.
func TestACLIdentityFromSAN(t *testing.T) {
	acl, err := broker.ParseACL([]byte(`{"users": [{"name": "sensor-7.example", "publish": ["sensors/${identity}/#"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, brokertest.Options{ACL: acl})
	san, err := devpki.Issue(devpki.CertSpec{Client: true, DNSNames: []string{"sensor-7.example"}}, b.PKI.CA)
	if err != nil {
		t.Fatal(err)
	}
	if san.Cert.Subject.CommonName != "" {
		t.Fatalf("test certificate has a common name: %q", san.Cert.Subject.CommonName)
	}
	pair, err := tls.X509KeyPair(san.CertPEM, san.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg := b.ClientTLSConfig("")
	cfg.Certificates = []tls.Certificate{pair}
	c := dialTLS(t, b.TLSAddr, cfg)
	connectRaw(t, c, connect5("s7", 60))
	for _, s := range []struct {
		topic string
		want  byte
	}{{"sensors/sensor-7.example/t", 0}, {"sensors/other/t", 0x87}} {
		c.Write(publish(true, s.topic, 1, 1, nil))
		if p, err := readPacket(c); err != nil || p.kind() != 4 || ackCode(p) != s.want {
			t.Fatalf("PUBACK for %s: %v %v, want reason %#x", s.topic, p, err, s.want)
		}
	}
}
