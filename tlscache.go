// A prepared TLS configuration per server, shared by a client's connections.

package fennec

import (
	"crypto/tls"
	"runtime"
	"sync"
	"weak"

	"github.com/fennec-mqtt/fennec/mqttconn"
)

// A fleet of clients usually shares one *tls.Config and one broker. Each client needs a copy
// with ServerName filled in; preparedTLS shares that copy among clients with the same config,
// address and ALPN, saving a tls.Config per client. Entries go away with the caller's config.
type tlsKey struct {
	cfg  weak.Pointer[tls.Config]
	addr string
	alpn string
}

var tlsCache sync.Map // tlsKey → *tls.Config

func preparedTLS(cfg *tls.Config, addr string, alpn []string) *tls.Config {
	if cfg != nil && cfg.ServerName != "" && (len(alpn) == 0 || len(cfg.NextProtos) > 0) {
		return cfg // nothing to fill in
	}
	if cfg == nil {
		return mqttconn.PrepareTLS(nil, addr, alpn)
	}
	a := ""
	if len(alpn) > 0 {
		a = alpn[0]
	}
	key := tlsKey{weak.Make(cfg), addr, a}
	if v, ok := tlsCache.Load(key); ok {
		return v.(*tls.Config)
	}
	p := mqttconn.PrepareTLS(cfg, addr, alpn)
	if _, loaded := tlsCache.LoadOrStore(key, p); !loaded {
		runtime.AddCleanup(cfg, func(k tlsKey) { tlsCache.Delete(k) }, key)
	}
	v, _ := tlsCache.Load(key)
	if v == nil {
		return p
	}
	return v.(*tls.Config)
}
