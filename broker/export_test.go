package broker

// Test-only views of the fault machinery, so that tests wait for events instead of sleeping.

// ReadParked reports whether the broker's reader of the client is blocked by StopReading.
func (f *Faults) ReadParked(clientID string) bool {
	c, err := f.conn(clientID)
	return err == nil && c.parked.Load() > 0
}

// AcksHeld returns how many acknowledgements DelayAcks is holding.
func (f *Faults) AcksHeld() int { return int(f.acksHeld.Load()) }

// SessionRecords reports which of the hook's per-session records exist for a client ID: the
// identity of an offline session, the redelivery order, the packet identifier renumbering.
func (b *Broker) SessionRecords(clientID string) (parked, order, ids bool) {
	_, parked = b.hook.parked.Load(clientID)
	_, order = b.hook.order.Load(clientID)
	_, ids = b.hook.ids.Load(clientID)
	return parked, order, ids
}

// SetShelveAfter sets the table size from which an offline session's messages are kept on its
// own list (flow.go), and returns a function that restores it.
func SetShelveAfter(n int) (restore func()) {
	old := shelveAfter.Swap(int32(n))
	return func() { shelveAfter.Store(old) }
}

// Shelved returns how many messages all brokers of this process moved to a session's list.
func Shelved() int64 { return shelvedTotal.Load() }
