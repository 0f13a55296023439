// Connection lifecycle: dial, CONNACK, session resume, the read loop, losing the connection and
// reconnecting with backoff, enhanced re-authentication.

package fennec

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/fennec-mqtt/fennec/internal/connfast"
	"github.com/fennec-mqtt/fennec/mqttconn"
	"github.com/fennec-mqtt/fennec/packet"
	"github.com/fennec-mqtt/fennec/session"
)

// restore loads the store's session into the client before the first connection.
func (c *Client) restore() error {
	out, in, err := c.store.Load()
	if err != nil {
		return wrapErr("restoring session", err)
	}
	for _, r := range out {
		pub, err := session.UnmarshalPublish(r.Data)
		if err != nil {
			return wrapErr("restoring session", err)
		}
		c.out.Restore(&outMsg{Pub: pub}, r)
	}
	c.in.Restore(in)
	if c.log != nil && (len(out) > 0 || len(in) > 0) {
		c.log.Info("mqtt session restored", "outbound", len(out), "inbound_qos2", len(in))
	}
	return nil
}

func (c *Client) dial(ctx context.Context) (*mqttconn.Conn, *packet.Connack, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	go func() {
		select {
		case <-c.closeCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	// The broker this attempt goes to: a Server Reference to follow, else the current one of
	// Server and Servers.
	c.mu.Lock()
	redirect, srv := c.redirect, c.servers[c.cur]
	c.mu.Unlock()
	opts := c.dialOptions()
	if redirect != "" || srv != c.url {
		if redirect != "" {
			opts.Addr = redirect
		} else {
			opts.Scheme, opts.Addr, opts.Path = srv.Scheme, srv.Addr(), cmp.Or(c.cfg.WebSocketPath, srv.Path)
		}
		if opts.Scheme == "mqtts" || opts.Scheme == "wss" {
			opts.TLSConfig = c.tlsFor(opts.Scheme, opts.Addr)
		}
		if redirect != "" && c.log != nil {
			c.log.Info("mqtt connecting to the server the broker referred to", "server", redirect)
		}
	}
	if f := c.cfg.WebSocketPathFunc; f != nil && (c.url.Scheme == "ws" || c.url.Scheme == "wss") {
		path, err := f(ctx)
		if err != nil {
			return nil, nil, wrapErr("websocket path", err)
		}
		opts.Path = path
	}
	conn, ack, err := mqttconn.Dial(ctx, &opts)
	if err != nil {
		var re *ReasonError
		if errors.As(err, &re) && re.Packet == packet.CONNACK {
			c.noteServerReference(re)
		}
		if len(c.servers) > 1 && redirect == "" {
			c.mu.Lock()
			c.cur = (c.cur + 1) % len(c.servers) // fail over: the next attempt goes to the next
			next := c.servers[c.cur]
			c.mu.Unlock()
			if c.log != nil {
				c.log.Info("mqtt connect failed; the next attempt goes to the next server", "server", srv.String(), "next", next.String(), "error", err)
			}
		}
		return nil, ack, err
	}
	if c.cfg.Trace == nil {
		// onPacket keeps nothing of a PUBLISH or PUBACK but its fields; a user's Trace might.
		connfast.ReusePackets(conn)
	}
	if c.log != nil {
		c.log.Info("mqtt connected", "server", srv.String(), "version", c.cfg.Version.String(),
			"client_id", c.cfg.ClientID, "session_present", ack.SessionPresent)
	}
	return conn, ack, nil
}

// run owns the connection: it reads from it and, when it ends, reconnects with backoff. When
// a handler running on this goroutine hands reading off (see dispatcher.inline), run returns
// and the goroutine that took over, started by handOffReader, owns the c.wg count.
func (c *Client) run(conn *mqttconn.Conn) {
	if c.runLoop(conn) {
		c.wg.Done()
	}
}

// runLoop is run's body; it returns false when reading was handed off to another goroutine.
//
// Every lost connection and every failed attempt is followed by a wait, Backoff(n), where n
// counts the losses and failures since the last connection that stayed up for
// BackoffResetAfter: a broker that accepts and drops at once meets a growing backoff, never a
// storm. Only the very first attempt with ConnectRetry goes out at once. A refusal that retrying
// cannot fix (Permanent) is reported and waits Backoff(0), the maximum.
func (c *Client) runLoop(conn *mqttconn.Conn) bool {
	for {
		if conn == nil {
			if c.retry.tried {
				d := c.cfg.Backoff(c.retry.failures)
				if c.retry.permanent {
					d = c.cfg.Backoff(0)
				}
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-c.closeCh:
					t.Stop()
					return true
				}
			}
			c.retry.tried = true
			var ack *packet.Connack
			var err error
			conn, ack, err = c.dial(context.Background())
			if err != nil {
				if c.isClosed() {
					return true
				}
				c.retry.failures++
				c.retry.permanent = Permanent(err)
				if c.log != nil {
					c.log.Warn("mqtt connect failed", "server", c.url.String(), "attempt", c.retry.failures,
						"permanent", c.retry.permanent, "err", err)
				}
				if f := c.cfg.OnConnectError; f != nil {
					c.disp.enqueueFunc(func() { f(c, err) })
				}
				continue
			}
			c.retry.permanent = false
			if !c.up(conn, ack) {
				conn.Close(ErrClosed)
				return true
			}
		}
		err := conn.Run()
		if errors.Is(err, mqttconn.ErrHandedOff) {
			return false
		}
		if !c.down(conn, err) {
			return true
		}
		if c.cfg.DisableReconnect {
			lost := err
			if !errors.Is(err, ErrConnectionLost) {
				lost = wrapErr("connection lost", err)
				lost = &joinedErr{lost, ErrConnectionLost}
			}
			c.mu.Lock()
			if c.closedErr == nil {
				c.closedErr = lost
			}
			c.mu.Unlock()
			c.failAll(lost)
			c.disp.stop(c.markDone)
			return true
		}
		// The backoff starts again only after a connection that stayed up long enough.
		if time.Since(c.retry.upSince) >= c.cfg.BackoffResetAfter {
			c.retry.failures = 0
		}
		c.retry.failures++
		conn = nil
	}
}

// up installs a new connection: it restores the session on the wire (resubscribe when the
// broker lost it, resend unacknowledged messages in their original order) and starts sending.
func (c *Client) up(conn *mqttconn.Conn, ack *packet.Connack) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.conn, c.caps = conn, capsOf(ack)
	c.connections++
	c.retry.tried, c.retry.upSince = true, time.Now()
	srvWindow := 65535
	if c.cfg.Version == packet.V5 && ack.Props.Has(packet.PropReceiveMaximum) && ack.Props.ReceiveMaximum > 0 {
		srvWindow = int(ack.Props.ReceiveMaximum)
	}
	sessionLost := !ack.SessionPresent
	var inClear []uint16
	if sessionLost {
		inClear = c.in.SessionLost()
	}
	// With the session present, messages still waiting for their handler keep their state:
	// the broker's resends are ignored and the ack follows when the handler returns.
	// Resubscribe first, so that messages we publish next find our subscriptions.
	resub := c.cfg.Resubscribe
	if resub == ResubscribeAuto {
		resub = ResubscribeWhenLost
		if c.cfg.Version == packet.V5 {
			resub = ResubscribeAlways
		}
	}
	if (sessionLost || resub == ResubscribeAlways) && len(c.subOrder) > 0 {
		// One SUBSCRIBE per Subscription Identifier (a SUBSCRIBE carries one), at most 64
		// filters each, in the order the filters were first subscribed. With the session
		// present, retained messages are asked for only if the subscription is new (Retain
		// Handling 1, MQTT 5): the broker may have lost it (see ResubscribePolicy).
		groups := map[uint32][]packet.Subscription{}
		var order []uint32
		for _, f := range c.subOrder {
			if sb := c.subs[f]; sb.acked {
				if _, ok := groups[sb.subID]; !ok {
					order = append(order, sb.subID)
				}
				s := sb.sub
				if !sessionLost && c.cfg.Version == packet.V5 && s.RetainHandling == 0 {
					s.RetainHandling = 1
				}
				groups[sb.subID] = append(groups[sb.subID], s)
			}
		}
		for _, sid := range order {
			subs := groups[sid]
			for len(subs) > 0 {
				n := min(len(subs), 64)
				if id, ok := c.out.IDs().Take(); ok {
					ch := make(chan packet.Packet, 1)
					c.awaitLocked(id, ch)
					conn.SendNow(subscribePacket(id, sid, subs[:n]), nil)
					go c.awaitResubscribe(conn, id, ch, subs[:n])
				}
				subs = subs[n:]
			}
		}
	}
	// Everything in the queue is sent again on this connection, in order.
	c.out.SetQoS2Window(qos2Window(&c.cfg, conn.Version()))
	c.out.Up(ack.SessionPresent, srvWindow)
	c.pumpLocked()
	c.signalState()
	c.signalSpace()
	c.mu.Unlock()
	if c.store != nil {
		for _, id := range inClear {
			c.store.DeleteInbound(id)
		}
	}
	if f := c.cfg.OnConnectionUp; f != nil {
		c.disp.enqueueFunc(func() { f(c, ack) })
	}
	return true
}

func (c *Client) awaitResubscribe(conn *mqttconn.Conn, id uint16, ch chan packet.Packet, subs []packet.Subscription) {
	select {
	case p := <-ch:
		if sa, ok := p.(*packet.Suback); ok && c.log != nil {
			for i, rc := range sa.ReasonCodes {
				if rc >= 0x80 && i < len(subs) {
					c.log.Warn("mqtt resubscribe refused", "filter", subs[i].Filter, "code", rc.String())
				}
			}
		}
	case <-conn.Done():
		c.mu.Lock()
		if c.requests[id] == ch {
			delete(c.requests, id)
			c.out.IDs().Free(id)
		}
		c.mu.Unlock()
	}
}

// down records the end of conn; it reports whether the client goes on (reconnects).
func (c *Client) down(conn *mqttconn.Conn, err error) bool {
	c.mu.Lock()
	if c.conn == conn {
		c.conn = nil
		c.out.Down()
		c.signalState()
		c.signalSpace()
	}
	// Fail outstanding SUBSCRIBE/UNSUBSCRIBE waits: their callers retry on the next connection.
	for id, ch := range c.requests {
		delete(c.requests, id)
		c.out.IDs().Free(id)
		close(ch)
	}
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return false
	}
	if c.log != nil {
		c.log.Warn("mqtt connection lost", "server", c.url.String(), "err", err)
	}
	if f := c.cfg.OnConnectionLost; f != nil {
		c.disp.enqueueFunc(func() { f(c, err) })
	}
	return true
}

func isConnErr(err error) bool {
	return errors.Is(err, mqttconn.ErrConnectionLost) || errors.Is(err, mqttconn.ErrClosed) ||
		errors.Is(err, mqttconn.ErrKeepAliveTimeout) || errors.Is(err, mqttconn.ErrWriteTimeout) ||
		errors.Is(err, mqttconn.ErrProtocolViolation) || isReasonDisconnect(err)
}

func isReasonDisconnect(err error) bool {
	var re *ReasonError
	return errors.As(err, &re) && re.Packet == packet.DISCONNECT
}

// noteServerReference remembers the server a 0x9C or 0x9D refers to, for the next connection.
func (c *Client) noteServerReference(re *ReasonError) {
	if !c.cfg.FollowServerReference || re.ServerReference == "" || re.Code != 0x9C && re.Code != 0x9D {
		return
	}
	ref, _, _ := strings.Cut(strings.TrimSpace(re.ServerReference), " ")
	if _, _, err := net.SplitHostPort(ref); err != nil {
		_, port, _ := net.SplitHostPort(c.url.Addr())
		ref = net.JoinHostPort(strings.Trim(ref, "[]"), port)
	}
	c.mu.Lock()
	c.redirect = ref
	c.mu.Unlock()
	if c.log != nil {
		c.log.Info("mqtt broker referred to another server", "code", re.Code.String(), "server_reference", re.ServerReference, "next", ref)
	}
}

func (c *Client) redirected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.redirect != ""
}

// referred reports whether err is a CONNACK that sends the client to another server.
func referred(err error) bool {
	var re *ReasonError
	return errors.As(err, &re) && re.Packet == packet.CONNACK && (re.Code == 0x9C || re.Code == 0x9D) && re.ServerReference != ""
}

// versionRefused reports whether err is a broker's refusal of MQTT 5 in CONNACK.
func versionRefused(err error) bool {
	var re *ReasonError
	if !errors.As(err, &re) || re.Packet != packet.CONNACK {
		return false
	}
	return re.Version == packet.V311 && re.Code == 1 || re.Version == packet.V5 && re.Code == 0x84
}

// Reauthenticate runs Config.Authenticator again on the live connection (AUTH 0x19, the broker's
// challenges, AUTH 0x00) and returns when the broker has accepted, or with its refusal (the
// broker then ends the connection). MQTT 5 only.
func (c *Client) Reauthenticate(ctx context.Context) error {
	a := c.cfg.Authenticator
	if a == nil || c.cfg.Version != packet.V5 {
		return errors.New("fennec: reauthenticate: no Authenticator (MQTT 5)")
	}
	data, err := a.Initial()
	if err != nil {
		return fmt.Errorf("fennec: reauthenticate %s: %w", a.Method(), err)
	}
	done := make(chan error, 1)
	c.mu.Lock()
	conn := c.conn
	if conn == nil || c.reauth != nil {
		c.mu.Unlock()
		return errors.New("fennec: reauthenticate: not connected, or a re-authentication is running")
	}
	c.reauth = done
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.reauth == done {
			c.reauth = nil
		}
		c.mu.Unlock()
	}()
	p := &packet.Auth{ReasonCode: packet.ReAuthenticate}
	p.Props.AuthenticationMethod = a.Method()
	p.Props.Set(packet.PropAuthenticationMethod)
	if data != nil {
		p.Props.AuthenticationData = data
		p.Props.Set(packet.PropAuthenticationData)
	}
	if err := conn.SendNow(p, nil); err != nil {
		return fmt.Errorf("fennec: reauthenticate: %w", err)
	}
	select {
	case err := <-done:
		return err
	case <-conn.Done():
		return fmt.Errorf("fennec: reauthenticate: %w", ErrConnectionLost)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// onAuth handles an AUTH from the broker on a live connection: part of a re-authentication.
func (c *Client) onAuth(conn *mqttconn.Conn, p *packet.Auth) {
	a := c.cfg.Authenticator
	c.mu.Lock()
	done := c.reauth
	c.mu.Unlock()
	if a == nil || done == nil || p.Props.AuthenticationMethod != a.Method() {
		conn.Fail(&ProtocolError{Packet: packet.AUTH, Msg: "broker sent AUTH outside an authentication this client started [MQTT-4.12.0-6]"})
		return
	}
	switch p.ReasonCode {
	case packet.ContinueAuthentication:
		data, err := a.Challenge(p.Props.AuthenticationData)
		if err != nil {
			done <- fmt.Errorf("fennec: reauthenticate %s: %w", a.Method(), err)
			conn.Fail(&ProtocolError{Packet: packet.AUTH, Msg: "re-authentication failed on this side: " + err.Error(), Reason: packet.NotAuthorized})
			return
		}
		r := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
		r.Props.AuthenticationMethod = a.Method()
		r.Props.Set(packet.PropAuthenticationMethod)
		r.Props.AuthenticationData = data
		r.Props.Set(packet.PropAuthenticationData)
		conn.SendNow(r, nil)
	case packet.Success:
		select {
		case done <- a.Finish(p.Props.AuthenticationData):
		default:
		}
	default:
		conn.Fail(&ProtocolError{Packet: packet.AUTH, Msg: fmt.Sprintf("broker sent AUTH %s during a re-authentication", p.ReasonCode)})
	}
}

// dialOptions are the connection options of an attempt to Server, made from the Config for
// each attempt: a connected client keeps neither them nor its CONNECT packet (an idle
// connection's memory is the session's, not a second copy of the Config).
func (c *Client) dialOptions() mqttconn.Options {
	o := mqttconn.Options{Scheme: c.url.Scheme, Addr: c.url.Addr(), Path: cmp.Or(c.cfg.WebSocketPath, c.url.Path),
		TLSConfig: cmp.Or(c.tlsc, c.cfg.TLSConfig), Dial: c.cfg.Dial, Connect: connectPacket(&c.cfg),
		MaxPacketSize: c.cfg.MaxPacketSize, Logger: c.cfg.Logger, Auth: c.cfg.Authenticator,
		OnPacket: c.onPacket, Trace: c.cfg.Trace}
	return o
}

// connectPacket is the CONNECT that cfg asks for (MQTT 5: with its properties).
func connectPacket(cfg *Config) packet.Connect {
	ka := cfg.KeepAlive
	if ka < 0 {
		ka = 0
	}
	keepAlive := int64((ka + time.Second - 1) / time.Second) // whole seconds, rounded up
	if keepAlive > 65535 {
		keepAlive = 65535
	}
	conn := packet.Connect{Version: cfg.Version, CleanStart: cfg.CleanStart, KeepAlive: uint16(keepAlive),
		ClientID: cfg.ClientID, Username: cfg.Username, HasUsername: cfg.Username != "",
		Password: cfg.Password, HasPassword: cfg.Password != nil}
	if cfg.Will != nil {
		conn.Will = &packet.Will{Topic: cfg.Will.Topic, Payload: cfg.Will.Payload, QoS: cfg.Will.QoS,
			Retain: cfg.Will.Retain}
		if cfg.Version == packet.V5 {
			conn.Will.Props = cfg.Will.Props
		}
	}
	if cfg.Version == packet.V5 {
		if cfg.ConnectProperties != nil {
			conn.Props = *cfg.ConnectProperties
		}
		// Topic aliases from the broker are not supported: announce none (zero) so the broker
		// never sends one [MQTT-3.3.2-9].
		conn.Props.Clear(packet.PropTopicAliasMaximum)
		if cfg.TopicAliasMaximum > 0 {
			conn.Props.SetTopicAliasMaximum(cfg.TopicAliasMaximum)
		}
		if cfg.SessionExpiry > 0 {
			conn.Props.SetSessionExpiryInterval(uint32(min(cfg.SessionExpiry/time.Second, 0xFFFFFFFF)))
		}
		if cfg.ReceiveMaximum != 65535 {
			conn.Props.SetReceiveMaximum(cfg.ReceiveMaximum)
		}
		if cfg.MaxPacketSize > 0 {
			conn.Props.SetMaximumPacketSize(cfg.MaxPacketSize)
		}
	}
	return conn
}
