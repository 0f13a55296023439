package diagnose_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/diagnose"
	"github.com/fennec-mqtt/fennec/internal/mosquittotest"
	"github.com/fennec-mqtt/fennec/packet"
)

// The doctor over WebSockets: every step passes against the embedded broker (ws and wss with
// mutual TLS) and mosquitto; a path the server does not serve, a refused upgrade, an HTTP answer
// that is not an upgrade, and the plain MQTT port are each named, 20 times in a row.
func TestDoctorWebSocket(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{WebSockets: true})
	m := mosquittotest.Start(t, mosquittotest.Options{WebSockets: true, Quiet: true})
	ws := func(addr, path string) diagnose.Target {
		h, p := hostPort(t, addr)
		return diagnose.Target{Host: h, Port: p, WebSocket: true, Path: path, Timeout: 3 * time.Second}
	}
	for name, tg := range map[string]diagnose.Target{"embedded ws": ws(b.WSAddr, "/mqtt"), "mosquitto ws": ws(m.WSAddr, "/mqtt")} {
		for _, v := range []packet.Version{packet.V5, packet.V311} {
			tg.Version = v
			r := diagnose.Run(t.Context(), tg)
			if !r.OK() {
				t.Fatalf("%s %v: %s", name, v, r.Failed)
			}
			var steps []string
			for _, s := range r.Steps {
				steps = append(steps, s.Step)
			}
			if got := strings.Join(steps, ","); got != "local,dns,tcp,websocket,mqtt,roundtrip" {
				t.Fatalf("%s: steps %s", name, got)
			}
		}
	}
	wss := tlsTarget(t, b.WSSAddr, b.CAFile, b.ClientCert, b.ClientKey)
	wss.WebSocket, wss.TLSOptions.NextProtos = true, []string{"http/1.1"}
	if r := diagnose.Run(t.Context(), wss); !r.OK() || r.Steps[4].Step != "websocket" || !strings.Contains(strings.Join(r.Steps[4].Facts, " "), "subprotocol: mqtt") {
		t.Fatalf("wss: %+v %v", r.Steps, r.Failed)
	}

	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/signed":
			http.Error(w, "Forbidden", http.StatusForbidden)
		case "/page":
			w.Write([]byte("<html>a web page</html>"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer web.Close()
	webAddr := strings.TrimPrefix(web.URL, "http://")
	expectCause(t, ws(webAddr, "/mqtt"), runs, diagnose.StepWebSocket, diagnose.CauseWSPathNotFound, "404 Not Found", "/mqtt for AWS IoT")
	expectCause(t, ws(webAddr, "/signed"), runs, diagnose.StepWebSocket, diagnose.CauseWSRefused, "403 Forbidden", "SigV4")
	expectCause(t, ws(webAddr, "/page"), runs, diagnose.StepWebSocket, diagnose.CauseWSNotUpgraded, "200 OK", "instead of 101")
	expectCause(t, ws(b.TCPAddr, "/mqtt"), runs, diagnose.StepWebSocket, diagnose.CauseWSNotHTTP, "does not speak WebSocket", "protocol websockets")
}
