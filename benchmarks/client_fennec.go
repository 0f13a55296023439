package benchmarks

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// Fennec is the Fennec client with its defaults except the client ID, a 60 s keepalive and
// the protocol version. Throughput uses PublishAsync (every message handed over at once, the
// tokens waited for at the end); the client keeps its in-flight window full by itself.
type Fennec struct {
	Version packet.Version
}

// fennecLibraries returns the Fennec client configurations in the comparison: MQTT 5.0 (the
// default) and MQTT 3.1.1, the protocol paho.mqtt.golang speaks.
func fennecLibraries() []Library {
	return []Library{Fennec{Version: packet.V5}, Fennec{Version: packet.V311}}
}

func (f Fennec) Name() string {
	if f.Version == packet.V311 {
		return "Fennec (MQTT 3.1.1)"
	}
	return "Fennec (MQTT 5.0)"
}

func (f Fennec) Short() string {
	if f.Version == packet.V311 {
		return "fennec-3.1.1"
	}
	return "fennec-5"
}

type fennecConn struct{ c *fennec.Client }

// FennecConnectionsLost counts connections the Fennec clients lost during the measurements (a
// healthy run has none); LastFennecLoss returns the cause of the latest.
var (
	FennecConnectionsLost atomic.Int64
	lastLost              atomic.Pointer[error]
)

// LastFennecLoss returns why a Fennec client last lost its connection, nil if none did.
func LastFennecLoss() error {
	if e := lastLost.Load(); e != nil {
		return *e
	}
	return nil
}

func (f Fennec) Connect(ctx context.Context, ep Endpoint, id string) (Conn, error) {
	cfg := fennec.Config{
		Server:     "mqtt://" + ep.Addr,
		ClientID:   id,
		Version:    f.Version,
		KeepAlive:  60 * time.Second,
		CleanStart: true,
		// The client's defaults: a window of 1,000 QoS 1/2 messages for both versions (the
		// earlier tables set it explicitly, when the 3.1.1 default held QoS 1 to 20 as well;
		// paho.mqtt.golang has no window of its own).
		OnConnectionLost: func(_ *fennec.Client, err error) {
			FennecConnectionsLost.Add(1)
			lastLost.Store(&err)
		},
	}
	if ep.TLS != nil {
		cfg.Server = "mqtts://" + ep.Addr
		cfg.TLSConfig = ep.TLS
	}
	c, err := fennec.Connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &fennecConn{c}, nil
}

func (f *fennecConn) Subscribe(ctx context.Context, topic string, qos byte, h func([]byte)) error {
	ack, err := f.c.Subscribe(ctx, func(m *fennec.Message) { h(m.Payload) }, packet.Subscription{Filter: topic, QoS: packet.QoS(qos)})
	if err != nil {
		return err
	}
	if ack == nil {
		return errors.New("benchmarks: fennec: no SUBACK")
	}
	return nil
}

func (f *fennecConn) PublishBurst(ctx context.Context, topic string, qos byte, n int, payload func(int) []byte) error {
	tokens := make([]*fennec.Token, n)
	for i := range tokens {
		tokens[i] = f.c.PublishAsync(ctx, &fennec.Message{Topic: topic, QoS: packet.QoS(qos), Payload: payload(i)})
	}
	for _, t := range tokens {
		if err := t.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (f *fennecConn) Publish(ctx context.Context, topic string, qos byte, payload []byte) error {
	return f.c.Publish(ctx, &fennec.Message{Topic: topic, QoS: packet.QoS(qos), Payload: payload})
}

func (f *fennecConn) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return f.c.Disconnect(ctx)
}
