package broker

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// One takeover per client ID at a time.
//
// mochi (v2.7.9) takes a session over in attachClient: it looks up the client registered for
// the client ID, stops it, and registers the new one (inheritClientSession, then Clients.Add).
// Two connections with the same client ID that do this at the same moment both look up the
// same old client, and the second registration replaces the first in the table without
// stopping it: both stay connected with one client ID, against [MQTT-3.1.4-3], and a later
// connection takes over only the registered one. Seen in CI: a device reconnecting while
// fennec doctor connected with its ID (TestDoctorTakeover311, 1 run in 40 under -race).
//
// The broker therefore holds a lock per client ID from OnSessionEstablish (before mochi's look
// up) until the CONNACK has been written or the connection ends (closeConnackGate): the second
// connection's look up then finds the first and stops it. The lock is bounded by connackWait;
// past it the connection goes on unserialized and a warning is logged.
//
// mochi also deletes the client ID's entry when a connection whose session ends with it goes
// away, unless that connection was taken over; a connection that took the ID over between that
// check and the deletion was deleted in its place, and the next connection with the ID found
// nobody to take over: two stayed connected (TestSimultaneousConnectsSameClientID, 1 run in
// about 30 under load, with the connections of one round ending while the next connected). The
// ending connection therefore holds the ID lock too, from OnDisconnect until the listener is
// done with it (connectionEnded), which is after mochi's deletion.

type idLock struct {
	ch   chan struct{} // holds one token while a connection of the ID is being registered
	refs int           // connections holding or waiting
}

func (h *hook) lockID(cl *mqtt.Client) {
	if _, held := h.idHeld.Load(cl); held {
		return // cl holds it already
	}
	h.idMu.Lock()
	if h.idLocks == nil {
		h.idLocks = map[string]*idLock{}
	}
	l := h.idLocks[cl.ID]
	if l == nil {
		l = &idLock{ch: make(chan struct{}, 1)}
		h.idLocks[cl.ID] = l
	}
	l.refs++
	h.idMu.Unlock()
	t := time.NewTimer(connackWait)
	defer t.Stop()
	select {
	case l.ch <- struct{}{}:
		h.idHeld.Store(cl, l)
	case <-t.C:
		h.b.log.Warn("session takeover not serialized: another connection with this client ID did not finish connecting in time", "client", cl.ID)
		h.dropRef(cl.ID, l)
	}
}

func (h *hook) unlockID(cl *mqtt.Client) {
	v, ok := h.idHeld.LoadAndDelete(cl)
	if !ok {
		return
	}
	l := v.(*idLock)
	<-l.ch
	h.dropRef(cl.ID, l)
}

func (h *hook) dropRef(id string, l *idLock) {
	h.idMu.Lock()
	if l.refs--; l.refs == 0 && h.idLocks[id] == l {
		delete(h.idLocks, id)
	}
	h.idMu.Unlock()
}
