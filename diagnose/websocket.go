package diagnose

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/fennec-mqtt/fennec/packet"
)

// websocket upgrades the connection to a WebSocket on Target.Path, with the subprotocol "mqtt"
// [MQTT-6.0.0-3], and runs MQTT on it from then on.
func (d *doctor) websocket(ctx context.Context) *Diagnosis {
	if !d.t.WebSocket {
		return nil
	}
	path := d.t.Path
	if path == "" {
		path = "/mqtt"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	raw := d.conn()
	scheme, defPort := "http", 80
	if d.t.TLS {
		scheme, defPort = "https", 443
	}
	host := d.t.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if d.t.Port != defPort {
		host += ":" + strconv.Itoa(d.t.Port)
	}
	url := scheme + "://" + host + path
	given := false
	hand := func(context.Context, string, string) (net.Conn, error) {
		if given {
			return nil, errors.New("diagnose: one connection only")
		}
		given = true
		return raw, nil
	}
	tr := &http.Transport{DialContext: hand, DialTLSContext: hand, DisableCompression: true}
	ctx, cancel := context.WithTimeout(ctx, d.t.Timeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}, Subprotocols: []string{"mqtt"}})
	if err != nil {
		return d.wsFailed(url, resp, err)
	}
	ws.SetReadLimit(1 << 20)
	facts := []string{"GET " + path + " → 101 Switching Protocols"}
	if sp := ws.Subprotocol(); sp == "mqtt" {
		facts = append(facts, `subprotocol: mqtt`)
	} else {
		facts = append(facts, fmt.Sprintf("WARNING: the server chose the subprotocol %q, not \"mqtt\" [MQTT-6.0.0-3]; strict clients refuse such a server", sp))
	}
	if srv := resp.Header.Get("Server"); srv != "" {
		facts = append(facts, "server: "+srv)
	}
	d.ws = websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	d.rd = packet.NewReader(d.ws, 1<<20)
	d.pass(StepWebSocket, "upgraded to a WebSocket on "+path, facts...)
	return nil
}

func (d *doctor) wsFailed(url string, resp *http.Response, err error) *Diagnosis {
	diag := &Diagnosis{Step: StepWebSocket, Err: err}
	status := 0
	if resp != nil {
		status = resp.StatusCode
		diag.Evidence = append(diag.Evidence, fmt.Sprintf("GET %s answered %s", url, resp.Status))
		if srv := resp.Header.Get("Server"); srv != "" {
			diag.Evidence = append(diag.Evidence, "server: "+srv)
		}
	}
	switch {
	case status == http.StatusNotFound:
		diag.Kind = CauseWSPathNotFound
		diag.Cause = fmt.Sprintf("the server speaks HTTP but has no WebSocket at %s (404 Not Found)", url)
		diag.Fix = "give the broker's WebSocket path in the URL (ws://HOST:PORT/PATH): /mqtt for AWS IoT, EMQX, HiveMQ and the embedded broker; mosquitto takes any path"
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		diag.Kind = CauseWSRefused
		diag.Cause = fmt.Sprintf("the server refused the WebSocket upgrade: %d %s", status, http.StatusText(status))
		diag.Fix = "the upgrade needs credentials: on AWS IoT a SigV4-signed URL (awsiot.Config.WebSocket) or a custom authorizer; elsewhere check the broker's HTTP authentication"
		if d.t.AWS {
			diag.Fix = "AWS IoT takes MQTT over WebSocket only with a SigV4-signed URL (awsiot.Config.WebSocket with IAM credentials) or a custom authorizer; device certificates are for MQTT on 8883 or 443 with ALPN x-amzn-mqtt-ca"
		}
	case status != 0:
		diag.Kind = CauseWSNotUpgraded
		diag.Cause = fmt.Sprintf("the server answered the WebSocket upgrade with %d %s instead of 101 Switching Protocols", status, http.StatusText(status))
		diag.Fix = "check that this port and path serve MQTT over WebSocket (a web server or proxy in front may not pass the upgrade on)"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "malformed HTTP"):
		diag.Kind = CauseWSNotHTTP
		diag.Cause = "the server did not answer the HTTP upgrade request with HTTP: this port does not speak WebSocket (an MQTT broker's plain MQTT port closes on it)"
		diag.Evidence = append(diag.Evidence, err.Error())
		diag.Fix = "use the broker's WebSocket port (mosquitto: a listener with protocol websockets; the embedded broker: a ws:// or wss:// listener), or mqtt:// for this port"
	default:
		var ne net.Error
		diag.Kind = CauseWSNotHTTP
		diag.Cause = "the WebSocket upgrade failed: " + err.Error()
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
			diag.Cause = fmt.Sprintf("the server did not answer the WebSocket upgrade within %s: this port does not speak HTTP", d.t.Timeout.Round(time.Millisecond))
		}
		diag.Fix = "use the broker's WebSocket port and path"
	}
	return diag
}
