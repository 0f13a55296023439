package broker

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fennec-mqtt/fennec/packet"
)

// MQTT 5 enhanced authentication with SCRAM-SHA-256 (MQTT 5.0 section 4.12, the SCRAM exchange
// of RFC 5802 with SHA-256 as RFC 7677 names it), for the users of Options.SCRAM. The exchange
// runs on the connection before mochi sees the CONNECT: client-first in CONNECT, server-first in
// AUTH 0x18, client-final in AUTH 0x18, server-final in the CONNACK. mochi then gets the CONNECT
// without the authentication properties and with the user as its user name, and the ACL's
// rules for that user apply. Re-authentication (AUTH 0x19 on a live connection) is not served:
// the broker answers it as mochi does.

// SCRAMMethod is the Authentication Method the broker serves.
const SCRAMMethod = "SCRAM-SHA-256"

const (
	scramIterations = 4096
	scramMaxPacket  = 4096 // the client-final AUTH
)

// scramSalt is the user's salt: fixed per user, so that a client may cache its salted password.
func scramSalt(user string) []byte {
	h := sha256.Sum256([]byte("fennec-scram-salt:" + user))
	return h[:16]
}

func scramMAC(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func scramFields(s string) map[string]string {
	f := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			f[k] = v
		}
	}
	return f
}

// scram runs the exchange for cp; it returns the CONNECT to hand to mochi.
func (c *conn) scram(cp *packet.Connect) ([]byte, error) {
	refuse := func(code packet.ReasonCode, why string) ([]byte, error) {
		c.writeConnack(packet.V5, code)
		return nil, c.refuse("SCRAM-SHA-256: "+why, nil)
	}
	first := string(cp.Props.AuthenticationData)
	if !strings.HasPrefix(first, "n,,") {
		return refuse(packet.BadAuthenticationMethod, "the client-first message has no gs2 header \"n,,\"")
	}
	bare := first[3:]
	f := scramFields(bare)
	user, cnonce := f["n"], f["r"]
	password, ok := c.l.b.opts.SCRAM[user]
	if user == "" || cnonce == "" || !ok {
		return refuse(packet.BadUserNameOrPassword, fmt.Sprintf("unknown user %q", user))
	}
	nb := make([]byte, 18)
	rand.Read(nb)
	nonce := cnonce + base64.RawStdEncoding.EncodeToString(nb)
	salt := scramSalt(user)
	serverFirst := fmt.Sprintf("r=%s,s=%s,i=%d", nonce, base64.StdEncoding.EncodeToString(salt), scramIterations)
	ch := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
	ch.Props.AuthenticationMethod, ch.Props.AuthenticationData = SCRAMMethod, []byte(serverFirst)
	ch.Props.Set(packet.PropAuthenticationMethod)
	ch.Props.Set(packet.PropAuthenticationData)
	b, err := ch.Append(nil, packet.V5)
	if err != nil {
		return nil, err
	}
	if _, err := c.Conn.Write(b); err != nil {
		return nil, c.refuse("SCRAM-SHA-256: writing AUTH", err)
	}
	resp, err := c.readAuth()
	if err != nil {
		return nil, c.refuse("SCRAM-SHA-256: no client-final AUTH", err)
	}
	final := string(resp.Props.AuthenticationData)
	withoutProof, proofB64, ok := strings.Cut(final, ",p=")
	if !ok || resp.ReasonCode != packet.ContinueAuthentication || resp.Props.AuthenticationMethod != SCRAMMethod || withoutProof != "c=biws,r="+nonce {
		return refuse(packet.ProtocolError, "the client-final message does not follow the exchange")
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, scramIterations, 32)
	if err != nil {
		return nil, err
	}
	authMsg := bare + "," + serverFirst + "," + withoutProof
	clientKey := scramMAC(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	sig := scramMAC(stored[:], authMsg)
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil || len(proof) != len(sig) {
		return refuse(packet.NotAuthorized, "the proof is not a SHA-256 proof")
	}
	key := make([]byte, len(proof))
	for i := range proof {
		key[i] = proof[i] ^ sig[i]
	}
	if k := sha256.Sum256(key); !hmac.Equal(k[:], stored[:]) {
		return refuse(packet.NotAuthorized, fmt.Sprintf("wrong password for %q", user))
	}
	c.scramUser = user
	c.scramFinal = "v=" + base64.StdEncoding.EncodeToString(scramMAC(scramMAC(salted, "Server Key"), authMsg))
	cp.Props.Clear(packet.PropAuthenticationMethod)
	cp.Props.Clear(packet.PropAuthenticationData)
	cp.Username, cp.HasUsername = user, true
	cp.Password, cp.HasPassword = nil, false
	return cp.Append(nil, packet.V5)
}

// readAuth reads one packet from the raw connection, at most scramMaxPacket bytes, within 10 s.
func (c *conn) readAuth() (*packet.Auth, error) {
	c.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.Conn.SetReadDeadline(time.Time{})
	var hdr [1]byte
	if _, err := io.ReadFull(c.Conn, hdr[:]); err != nil {
		return nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		var b [1]byte
		if _, err := io.ReadFull(c.Conn, b[:]); err != nil {
			return nil, err
		}
		n += int(b[0]&0x7f) * mult
		if b[0]&0x80 == 0 {
			break
		}
		if mult *= 128; i == 3 {
			return nil, fmt.Errorf("malformed remaining length")
		}
	}
	if n > scramMaxPacket {
		return nil, fmt.Errorf("AUTH of %d bytes (at most %d)", n, scramMaxPacket)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.Conn, body); err != nil {
		return nil, err
	}
	p, err := packet.Decode(packet.V5, hdr[0], body)
	if err != nil {
		return nil, err
	}
	a, ok := p.(*packet.Auth)
	if !ok {
		return nil, fmt.Errorf("%v instead of AUTH", p.Type())
	}
	return a, nil
}
