package fennec_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/packet"
)

// scram is the client side of SCRAM-SHA-256 (RFC 7677's mechanism) as an MQTT 5 enhanced
// authentication method.
type scram struct {
	user, password string
	nonce, first   string
	salted         []byte
	serverSig      []byte
}

func (s *scram) Method() string { return "SCRAM-SHA-256" }

func (s *scram) Initial() ([]byte, error) {
	b := make([]byte, 12)
	rand.Read(b)
	s.nonce = base64.RawStdEncoding.EncodeToString(b)
	s.first = "n=" + s.user + ",r=" + s.nonce
	return []byte("n,," + s.first), nil
}

func (s *scram) Challenge(data []byte) ([]byte, error) {
	f := scramFields(string(data))
	if !strings.HasPrefix(f["r"], s.nonce) {
		return nil, errors.New("server nonce does not extend ours")
	}
	salt, err := base64.StdEncoding.DecodeString(f["s"])
	if err != nil {
		return nil, err
	}
	var iter int
	fmt.Sscan(f["i"], &iter)
	s.salted, err = pbkdf2.Key(sha256.New, s.password, salt, iter, 32)
	if err != nil {
		return nil, err
	}
	withoutProof := "c=biws,r=" + f["r"]
	authMsg := s.first + "," + string(data) + "," + withoutProof
	clientKey := mac(s.salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	sig := mac(stored[:], authMsg)
	proof := make([]byte, len(clientKey))
	for i := range clientKey {
		proof[i] = clientKey[i] ^ sig[i]
	}
	s.serverSig = mac(mac(s.salted, "Server Key"), authMsg)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

func (s *scram) Finish(data []byte) error {
	v := scramFields(string(data))["v"]
	if sig, err := base64.StdEncoding.DecodeString(v); err != nil || !hmac.Equal(sig, s.serverSig) {
		return errors.New("the server's signature is wrong: it does not know the password")
	}
	return nil
}

func mac(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

func scramFields(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// scramServer runs the server side of one SCRAM exchange on fc, for the password, starting from
// the client's first message; lie makes it send a wrong final signature. It returns the final
// data to send (v=...) or "" when the proof is wrong.
func scramServer(t *testing.T, fc *fakeConn, clientFirst []byte, password string, lie bool) string {
	t.Helper()
	bare := strings.TrimPrefix(string(clientFirst), "n,,")
	salt := []byte("fennec-salt")
	serverFirst := "r=" + scramFields(bare)["r"] + "srv" + ",s=" + base64.StdEncoding.EncodeToString(salt) + ",i=4096"
	ch := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
	ch.Props.AuthenticationMethod, ch.Props.AuthenticationData = "SCRAM-SHA-256", []byte(serverFirst)
	ch.Props.Set(packet.PropAuthenticationMethod)
	ch.Props.Set(packet.PropAuthenticationData)
	fc.write(ch)
	resp, ok := fc.read().(*packet.Auth)
	if !ok || resp.ReasonCode != packet.ContinueAuthentication {
		t.Fatalf("client's answer %+v", resp)
	}
	final := string(resp.Props.AuthenticationData)
	withoutProof, proofB64, _ := strings.Cut(final, ",p=")
	salted, _ := pbkdf2.Key(sha256.New, password, salt, 4096, 32)
	authMsg := bare + "," + serverFirst + "," + withoutProof
	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	sig := mac(stored[:], authMsg)
	proof, _ := base64.StdEncoding.DecodeString(proofB64)
	got := make([]byte, len(proof))
	for i := range proof {
		got[i] = proof[i] ^ sig[i%len(sig)]
	}
	if gs := sha256.Sum256(got); !bytes.Equal(gs[:], stored[:]) {
		return ""
	}
	v := mac(mac(salted, "Server Key"), authMsg)
	if lie {
		v[0] ^= 1
	}
	return "v=" + base64.StdEncoding.EncodeToString(v)
}

// Enhanced authentication with SCRAM-SHA-256 against a scripted broker: the AUTH exchange before
// CONNACK, the client's check of the server's signature, a wrong password refused, a server that
// does not know the password caught, and a re-authentication on the live connection.
func TestEnhancedAuthSCRAM(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	connect := func(password string, serverPassword string, lie bool) (*fennec.Client, *fakeConn, error) {
		fb := startFake(t, packet.V5)
		type res struct {
			c   *fennec.Client
			err error
		}
		ch := make(chan res, 1)
		go func() {
			c, err := fennec.Connect(ctx, fennec.Config{Server: fb.url(), ClientID: "dev", DisableReconnect: true,
				Authenticator: &scram{user: "dev", password: password}})
			ch <- res{c, err}
		}()
		fc := fb.next(t)
		cp, ok := fc.read().(*packet.Connect)
		if !ok || cp.Props.AuthenticationMethod != "SCRAM-SHA-256" || !strings.HasPrefix(string(cp.Props.AuthenticationData), "n,,n=dev,r=") {
			t.Fatalf("CONNECT %+v", cp)
		}
		v := scramServer(t, fc, cp.Props.AuthenticationData, serverPassword, lie)
		ack := &packet.Connack{}
		if v == "" {
			ack.ReasonCode = packet.NotAuthorized
		} else {
			ack.Props.AuthenticationMethod, ack.Props.AuthenticationData = "SCRAM-SHA-256", []byte(v)
			ack.Props.Set(packet.PropAuthenticationMethod)
			ack.Props.Set(packet.PropAuthenticationData)
		}
		fc.write(ack)
		r := <-ch
		return r.c, fc, r.err
	}
	c, fc, err := connect("s3cret", "s3cret", false)
	if err != nil {
		t.Fatalf("SCRAM with the right password: %v", err)
	}
	defer c.Close()
	// re-authentication on the live connection
	done := make(chan error, 1)
	go func() { done <- c.Reauthenticate(ctx) }()
	re, ok := fc.read().(*packet.Auth)
	if !ok || re.ReasonCode != packet.ReAuthenticate {
		t.Fatalf("re-authentication starts with %+v", re)
	}
	v := scramServer(t, fc, re.Props.AuthenticationData, "s3cret", false)
	okAuth := &packet.Auth{ReasonCode: packet.Success}
	okAuth.Props.AuthenticationMethod, okAuth.Props.AuthenticationData = "SCRAM-SHA-256", []byte(v)
	okAuth.Props.Set(packet.PropAuthenticationMethod)
	okAuth.Props.Set(packet.PropAuthenticationData)
	fc.write(okAuth)
	if err := <-done; err != nil {
		t.Fatalf("re-authentication: %v", err)
	}

	var rerr *fennec.ReasonError
	if _, _, err := connect("wrong", "s3cret", false); !errors.As(err, &rerr) || rerr.Code != packet.NotAuthorized {
		t.Fatalf("a wrong password: %v", err)
	}
	if _, _, err := connect("s3cret", "s3cret", true); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("a server that does not know the password: %v", err)
	}
}

// SCRAM-SHA-256 against the embedded broker's server side, over TLS 1.3: the right password
// connects (and the client checks the broker's signature), a re-authentication on the live
// connection passes, a wrong password is refused with 0x87, an unknown user with 0x86, and
// messages flow under the SCRAM user's identity.
func TestEnhancedAuthSCRAMEmbedded(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{OptionalClientCert: true, SCRAM: map[string]string{"dev": "s3cret"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	connect := func(user, password string) (*fennec.Client, error) {
		return fennec.Connect(ctx, fennec.Config{Server: "mqtts://" + b.TLSAddr, TLSConfig: b.ClientTLSConfig(""), DisableReconnect: true,
			Authenticator: &scram{user: user, password: password}})
	}
	c, err := connect("dev", "s3cret")
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	defer c.Close()
	got := make(chan string, 1)
	if _, err := c.Subscribe(ctx, func(m *fennec.Message) { got <- string(m.Payload) }, packet.Subscription{Filter: "scram/t", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, &fennec.Message{Topic: "scram/t", QoS: 1, Payload: []byte("authenticated")}); err != nil {
		t.Fatal(err)
	}
	if p := <-got; p != "authenticated" {
		t.Fatal(p)
	}
	// re-authentication on the live connection, served by the broker
	if err := c.Reauthenticate(ctx); err != nil {
		t.Fatalf("re-authentication: %v", err)
	}
	if err := c.Publish(ctx, &fennec.Message{Topic: "scram/t", QoS: 1, Payload: []byte("still here")}); err != nil {
		t.Fatalf("after re-authentication: %v", err)
	}
	if p := <-got; p != "still here" {
		t.Fatal(p)
	}
	var re *fennec.ReasonError
	if _, err := connect("dev", "wrong"); !errors.As(err, &re) || re.Code != packet.NotAuthorized {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := connect("nobody", "x"); !errors.As(err, &re) || re.Code != packet.BadUserNameOrPassword {
		t.Fatalf("unknown user: %v", err)
	}
}
