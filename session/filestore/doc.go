// Package filestore is a durable session.Store in a bbolt database file. It is a package of its
// own so that a client that keeps its session in memory does not link bbolt.
//
//	store, err := filestore.Open("/var/lib/sensor/mqtt-session.db")
//	if err != nil { … }
//	defer store.Close()
//	c, err := fennec.Connect(ctx, fennec.Config{Server: url, ClientID: "sensor-1", Store: store})
package filestore
