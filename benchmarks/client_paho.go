package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// PahoMQTT is github.com/eclipse/paho.mqtt.golang v1.5.1 (MQTT 3.1.1), with its defaults except
// the client ID and a 60 s keepalive. Throughput uses its asynchronous tokens: every message is
// handed to Publish at once and the tokens are waited for at the end.
type PahoMQTT struct{}

func (PahoMQTT) Name() string  { return "paho.mqtt.golang v1.5.1" }
func (PahoMQTT) Short() string { return "paho.mqtt.golang" }

type pahoConn struct{ c mqtt.Client }

func waitToken(ctx context.Context, t mqtt.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (PahoMQTT) Connect(ctx context.Context, ep Endpoint, id string) (Conn, error) {
	o := mqtt.NewClientOptions()
	if ep.TLS != nil {
		o.AddBroker("ssl://" + ep.Addr)
		o.SetTLSConfig(ep.TLS)
	} else {
		o.AddBroker("tcp://" + ep.Addr)
	}
	o.SetClientID(id)
	o.SetKeepAlive(60 * time.Second)
	o.SetProtocolVersion(4)
	c := mqtt.NewClient(o)
	if err := waitToken(ctx, c.Connect()); err != nil {
		return nil, err
	}
	return &pahoConn{c}, nil
}

func (p *pahoConn) Subscribe(ctx context.Context, topic string, qos byte, h func([]byte)) error {
	return waitToken(ctx, p.c.Subscribe(topic, qos, func(_ mqtt.Client, m mqtt.Message) { h(m.Payload()) }))
}

func (p *pahoConn) PublishBurst(ctx context.Context, topic string, qos byte, n int, payload func(int) []byte) error {
	tokens := make([]mqtt.Token, n)
	for i := range tokens {
		tokens[i] = p.c.Publish(topic, qos, false, payload(i))
	}
	for _, t := range tokens {
		if err := waitToken(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

func (p *pahoConn) Publish(ctx context.Context, topic string, qos byte, payload []byte) error {
	return waitToken(ctx, p.c.Publish(topic, qos, false, payload))
}

func (p *pahoConn) Close() error {
	p.c.Disconnect(10)
	return nil
}

// AutoPaho is github.com/eclipse/paho.golang v0.23.0's autopaho (MQTT 5.0). Its Publish blocks
// until the PUBACK, so a QoS 1 burst runs as many concurrent publishers as the broker's Receive
// Maximum allows (at most MaxAutoPahoPublishers); a QoS 0 burst is one loop.
type AutoPaho struct{}

// MaxAutoPahoPublishers caps the concurrent autopaho publishers when the broker announces no
// Receive Maximum (65,535).
var MaxAutoPahoPublishers = 100

func (AutoPaho) Name() string  { return "paho.golang v0.23.0 (autopaho)" }
func (AutoPaho) Short() string { return "autopaho" }

type autoConn struct {
	cm         *autopaho.ConnectionManager
	cancel     context.CancelFunc
	receiveMax int
	handler    atomic.Pointer[func([]byte)]
}

func (AutoPaho) Connect(ctx context.Context, ep Endpoint, id string) (Conn, error) {
	scheme := "mqtt://"
	if ep.TLS != nil {
		scheme = "mqtts://"
	}
	u, err := url.Parse(scheme + ep.Addr)
	if err != nil {
		return nil, err
	}
	a := &autoConn{receiveMax: 65535}
	up := make(chan struct{})
	var once sync.Once
	connErr := make(chan error, 1)
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		TlsCfg:                        ep.TLS,
		KeepAlive:                     60,
		CleanStartOnInitialConnection: true,
		ConnectTimeout:                10 * time.Second,
		OnConnectionUp: func(_ *autopaho.ConnectionManager, ca *paho.Connack) {
			if ca.Properties != nil && ca.Properties.ReceiveMaximum != nil {
				a.receiveMax = int(*ca.Properties.ReceiveMaximum)
			}
			once.Do(func() { close(up) })
		},
		OnConnectError: func(err error) {
			select {
			case connErr <- err:
			default:
			}
		},
		ClientConfig: paho.ClientConfig{
			ClientID: id,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) {
					if h := a.handler.Load(); h != nil {
						(*h)(pr.Packet.Payload)
					}
					return true, nil
				},
			},
		},
	}
	cctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(cctx, cfg)
	if err != nil {
		cancel()
		return nil, err
	}
	a.cm, a.cancel = cm, cancel
	select {
	case <-up:
		return a, nil
	case err := <-connErr:
		a.Close()
		return nil, err
	case <-ctx.Done():
		a.Close()
		return nil, ctx.Err()
	}
}

func (a *autoConn) Subscribe(ctx context.Context, topic string, qos byte, h func([]byte)) error {
	a.handler.Store(&h)
	sa, err := a.cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: qos}}})
	if err != nil {
		return err
	}
	if len(sa.Reasons) != 1 || sa.Reasons[0] >= 0x80 {
		return fmt.Errorf("benchmarks: autopaho: SUBACK %v", sa.Reasons)
	}
	return nil
}

func (a *autoConn) Publish(ctx context.Context, topic string, qos byte, payload []byte) error {
	r, err := a.cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: payload})
	if err != nil {
		return err
	}
	if r != nil && r.ReasonCode >= 0x80 {
		return fmt.Errorf("benchmarks: autopaho: PUBACK reason code 0x%02x", r.ReasonCode)
	}
	return nil
}

func (a *autoConn) PublishBurst(ctx context.Context, topic string, qos byte, n int, payload func(int) []byte) error {
	workers := 1
	if qos > 0 {
		workers = min(a.receiveMax, MaxAutoPahoPublishers)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || firstErr.Load() != nil {
					return
				}
				if err := a.Publish(ctx, topic, qos, payload(i)); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return *e
	}
	return nil
}

func (a *autoConn) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := a.cm.Disconnect(ctx)
	a.cancel()
	if errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
