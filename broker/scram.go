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
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// MQTT 5 enhanced authentication with SCRAM-SHA-256 (MQTT 5.0 section 4.12, the SCRAM exchange
// of RFC 5802 with SHA-256 as RFC 7677 names it), for the users of Options.SCRAM. The exchange
// runs on the connection before mochi sees the CONNECT: client-first in CONNECT, server-first in
// AUTH 0x18, client-final in AUTH 0x18, server-final in the CONNACK. mochi then gets the CONNECT
// without the authentication properties and with the user as its user name, and the ACL's
// rules for that user apply. Re-authentication (AUTH 0x19 on a live connection, as the same
// user) runs the same exchange in AUTH packets (OnAuthPacket).

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

// scramState is one exchange between its first and final messages.
type scramState struct {
	user, bare, nonce, serverFirst string
	salted                         []byte
}

// scramStart reads the client-first message and makes the server-first one; code is the
// refusal when it fails.
func (b *Broker) scramStart(first string) (*scramState, packet.ReasonCode, error) {
	if !strings.HasPrefix(first, "n,,") {
		return nil, packet.BadAuthenticationMethod, fmt.Errorf("the client-first message has no gs2 header \"n,,\"")
	}
	bare := first[3:]
	f := scramFields(bare)
	user, cnonce := f["n"], f["r"]
	password, ok := b.opts.SCRAM[user]
	if user == "" || cnonce == "" || !ok {
		return nil, packet.BadUserNameOrPassword, fmt.Errorf("unknown user %q", user)
	}
	nb := make([]byte, 18)
	rand.Read(nb)
	st := &scramState{user: user, bare: bare, nonce: cnonce + base64.RawStdEncoding.EncodeToString(nb)}
	salt := scramSalt(user)
	st.serverFirst = fmt.Sprintf("r=%s,s=%s,i=%d", st.nonce, base64.StdEncoding.EncodeToString(salt), scramIterations)
	var err error
	if st.salted, err = pbkdf2.Key(sha256.New, password, salt, scramIterations, 32); err != nil {
		return nil, packet.UnspecifiedError, err
	}
	return st, 0, nil
}

// finish checks the client-final message and returns the server-final one.
func (st *scramState) finish(final string) (string, packet.ReasonCode, error) {
	withoutProof, proofB64, ok := strings.Cut(final, ",p=")
	if !ok || withoutProof != "c=biws,r="+st.nonce {
		return "", packet.ProtocolError, fmt.Errorf("the client-final message does not follow the exchange")
	}
	authMsg := st.bare + "," + st.serverFirst + "," + withoutProof
	clientKey := scramMAC(st.salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	sig := scramMAC(stored[:], authMsg)
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil || len(proof) != len(sig) {
		return "", packet.NotAuthorized, fmt.Errorf("the proof is not a SHA-256 proof")
	}
	key := make([]byte, len(proof))
	for i := range proof {
		key[i] = proof[i] ^ sig[i]
	}
	if k := sha256.Sum256(key); !hmac.Equal(k[:], stored[:]) {
		return "", packet.NotAuthorized, fmt.Errorf("wrong password for %q", st.user)
	}
	return "v=" + base64.StdEncoding.EncodeToString(scramMAC(scramMAC(st.salted, "Server Key"), authMsg)), 0, nil
}

func scramAuth(code packet.ReasonCode, data string) *packet.Auth {
	a := &packet.Auth{ReasonCode: code}
	a.Props.AuthenticationMethod, a.Props.AuthenticationData = SCRAMMethod, []byte(data)
	a.Props.Set(packet.PropAuthenticationMethod)
	a.Props.Set(packet.PropAuthenticationData)
	return a
}

// scram runs the exchange for cp; it returns the CONNECT to hand to mochi.
func (c *conn) scram(cp *packet.Connect) ([]byte, error) {
	refuse := func(code packet.ReasonCode, err error) ([]byte, error) {
		c.writeConnack(packet.V5, code)
		return nil, c.refuse("SCRAM-SHA-256: "+err.Error(), nil)
	}
	st, code, err := c.l.b.scramStart(string(cp.Props.AuthenticationData))
	if err != nil {
		return refuse(code, err)
	}
	b, err := scramAuth(packet.ContinueAuthentication, st.serverFirst).Append(nil, packet.V5)
	if err != nil {
		return nil, err
	}
	if _, err := c.wq.Write(b); err != nil {
		return nil, c.refuse("SCRAM-SHA-256: writing AUTH", err)
	}
	resp, err := c.readAuth()
	if err != nil {
		return nil, c.refuse("SCRAM-SHA-256: no client-final AUTH", err)
	}
	if resp.ReasonCode != packet.ContinueAuthentication || resp.Props.AuthenticationMethod != SCRAMMethod {
		return refuse(packet.ProtocolError, fmt.Errorf("AUTH %s for method %q", resp.ReasonCode, resp.Props.AuthenticationMethod))
	}
	final, code, err := st.finish(string(resp.Props.AuthenticationData))
	if err != nil {
		return refuse(code, err)
	}
	c.scramUser, c.scramFinal = st.user, final
	cp.Props.Clear(packet.PropAuthenticationMethod)
	cp.Props.Clear(packet.PropAuthenticationData)
	cp.Username, cp.HasUsername = st.user, true
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

// OnAuthPacket serves re-authentication (AUTH 0x19, then the client-final AUTH 0x18) for a
// connection that authenticated with SCRAM-SHA-256, as the same user. Anything else is refused
// with the reason code mochi then sends in DISCONNECT.
func (h *hook) OnAuthPacket(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	c := connOf(cl)
	if c == nil || c.scramUser == "" || pk.Properties.AuthenticationMethod != SCRAMMethod {
		return pk, packets.Code{Code: byte(packet.BadAuthenticationMethod), Reason: "bad authentication method"} // [MQTT-4.12.1-1]
	}
	fail := func(code packet.ReasonCode, err error) (packets.Packet, error) {
		c.reauth = nil
		h.b.log.Warn("re-authentication refused", "client", cl.ID, "user", c.scramUser, "reason", err)
		return pk, packets.Code{Code: byte(code), Reason: err.Error()}
	}
	reply := func(code packet.ReasonCode, data string) error {
		return cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Auth}, ReasonCode: byte(code),
			Properties: packets.Properties{AuthenticationMethod: SCRAMMethod, AuthenticationData: []byte(data)}})
	}
	switch pk.ReasonCode {
	case byte(packet.ReAuthenticate):
		st, code, err := h.b.scramStart(string(pk.Properties.AuthenticationData))
		if err != nil {
			return fail(code, err)
		}
		if st.user != c.scramUser {
			return fail(packet.NotAuthorized, fmt.Errorf("re-authentication as %q on a connection of %q", st.user, c.scramUser))
		}
		c.reauth = st
		return pk, reply(packet.ContinueAuthentication, st.serverFirst)
	case byte(packet.ContinueAuthentication):
		if c.reauth == nil {
			return fail(packet.ProtocolError, fmt.Errorf("AUTH 0x18 outside a re-authentication"))
		}
		final, code, err := c.reauth.finish(string(pk.Properties.AuthenticationData))
		c.reauth = nil
		if err != nil {
			return fail(code, err)
		}
		h.b.log.Info("re-authenticated", "client", cl.ID, "user", c.scramUser)
		return pk, reply(packet.Success, final)
	}
	return fail(packet.ProtocolError, fmt.Errorf("AUTH with reason code 0x%02x from a client", pk.ReasonCode))
}
