package bench

import (
	"bytes"
	"fmt"
	"html/template"
	"image/color"
	"io"
	"math"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// WriteReport writes a self-contained HTML page of res: its figures, a latency histogram
// and the throughput over time, drawn with gonum/plot as SVG inlined in the page, so that it
// opens offline in any browser.
func WriteReport(w io.Writer, res *Result) error {
	var latency, timeline template.HTML
	h, what := res.latency, "end-to-end latency (publish to receive)"
	if h == nil || h.TotalCount() == 0 {
		h, what = res.ack, "acknowledgement latency (publish to PUBACK/PUBCOMP; QoS 0: written)"
	}
	if h != nil && h.TotalCount() > 0 {
		svg, err := latencySVG(h, what)
		if err != nil {
			return err
		}
		latency = svg
	}
	if len(res.Timeline) > 0 {
		svg, err := timelineSVG(res.Timeline)
		if err != nil {
			return err
		}
		timeline = svg
	}
	return reportPage.Execute(w, map[string]any{
		"R": res, "Rows": Summary(res), "Latency": latency, "Timeline": timeline,
		"When": time.Now().UTC().Format(time.RFC3339),
	})
}

var reportPage = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>fennec bench {{.R.Mode}} {{.R.Server}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; }
td { padding: 0.2em 1em 0.2em 0; vertical-align: top; }
td:first-child { color: #555; }
figure { margin: 1.5em 0; }
</style>
</head>
<body>
<h1>fennec bench {{.R.Mode}}</h1>
<p>{{.R.Server}}, MQTT {{.R.Version}}, QoS {{.R.QoS}}, run {{printf "%08x" .R.Run}}, written {{.When}}{{if .R.Interrupted}}, interrupted{{end}}.</p>
<table>
{{range .Rows}}<tr><td>{{.Name}}</td><td>{{.Value}}</td></tr>
{{end}}</table>
{{if .Latency}}<figure id="latency">{{.Latency}}<figcaption>Latency histogram</figcaption></figure>{{end}}
{{if .Timeline}}<figure id="throughput">{{.Timeline}}<figcaption>Throughput over time</figcaption></figure>{{end}}
</body>
</html>
`))

// svgOf renders p as SVG without the XML prologue, for inlining in HTML.
func svgOf(p *plot.Plot) (template.HTML, error) {
	wt, err := p.WriterTo(8*vg.Inch, 4*vg.Inch, "svg")
	if err != nil {
		return "", fmt.Errorf("bench: chart: %w", err)
	}
	var b bytes.Buffer
	if _, err := wt.WriteTo(&b); err != nil {
		return "", fmt.Errorf("bench: chart: %w", err)
	}
	s := b.String()
	if i := strings.Index(s, "<svg"); i > 0 {
		s = s[i:]
	}
	return template.HTML(s), nil //nolint: the SVG is gonum's output of our own numbers
}

// latencySVG draws h (microseconds) as a histogram over log-spaced bins.
func latencySVG(h *hdrhistogram.Histogram, what string) (template.HTML, error) {
	lo, hi := math.Log10(float64(max(h.Min(), 1))), math.Log10(float64(max(h.Max(), 1))+1)
	if hi-lo < 0.1 {
		hi = lo + 0.1
	}
	const n = 40
	step := (hi - lo) / n
	bins := make([]plotter.HistogramBin, n)
	for i := range bins {
		bins[i].Min, bins[i].Max = math.Pow(10, lo+float64(i)*step)/1000, math.Pow(10, lo+float64(i+1)*step)/1000
	}
	for _, b := range h.Distribution() {
		if b.Count == 0 {
			continue
		}
		mid := (float64(b.From) + float64(b.To)) / 2
		i := int((math.Log10(max(mid, 1)) - lo) / step)
		bins[min(max(i, 0), n-1)].Weight += float64(b.Count)
	}
	p := plot.New()
	p.Title.Text = what
	p.X.Label.Text = "milliseconds (log scale)"
	p.Y.Label.Text = "messages"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	hist := &plotter.Histogram{Bins: bins, Width: bins[0].Max - bins[0].Min, FillColor: color.RGBA{R: 0x3b, G: 0x75, B: 0xaf, A: 0xff},
		LineStyle: draw.LineStyle{Color: color.Black, Width: vg.Points(0.5)}}
	p.Add(hist)
	return svgOf(p)
}

// timelineSVG draws messages per second sent and received over the run.
func timelineSVG(ts []Sample) (template.HTML, error) {
	sent, recv := make(plotter.XYs, len(ts)), make(plotter.XYs, len(ts))
	for i, s := range ts {
		sent[i] = plotter.XY{X: s.At, Y: s.Sent}
		recv[i] = plotter.XY{X: s.At, Y: s.Received}
	}
	p := plot.New()
	p.Title.Text = "throughput"
	p.X.Label.Text = "seconds"
	p.Y.Label.Text = "messages per second"
	p.Y.Min = 0
	ls, err := plotter.NewLine(sent)
	if err != nil {
		return "", fmt.Errorf("bench: chart: %w", err)
	}
	ls.Color = color.RGBA{R: 0x3b, G: 0x75, B: 0xaf, A: 0xff}
	lr, err := plotter.NewLine(recv)
	if err != nil {
		return "", fmt.Errorf("bench: chart: %w", err)
	}
	lr.Color = color.RGBA{R: 0xe1, G: 0x81, B: 0x2c, A: 0xff}
	lr.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
	p.Add(ls, lr)
	p.Legend.Add("sent", ls)
	p.Legend.Add("received", lr)
	p.Legend.Top = true
	return svgOf(p)
}

// Row is one line of a result summary.
type Row struct{ Name, Value string }

// Summary is res as the lines a person reads: the CLI prints them, the report tabulates them.
func Summary(res *Result) []Row {
	var rows []Row
	add := func(name, format string, a ...any) { rows = append(rows, Row{name, fmt.Sprintf(format, a...)}) }
	clients := res.Publishers + res.Subscribers + res.Connections
	add("connections", "%d of %d up, %d failed, %d dropped; %.0f connects/s; connect time %s",
		res.Connected, clients, res.ConnectErrors, res.Dropped, res.ConnectsPerSec, percentileText(res.ConnectTime))
	if res.Mode == Pub || res.Mode == PubSub {
		add("sent", "%d messages in %.2f s: %s msg/s, %s/s; %d failed", res.Sent, res.Elapsed, rate(res.SendRate), bytesText(res.SendBytesRate), res.PublishErrors)
		add("acknowledged in", "%s", percentileText(res.AckLatency))
	}
	if res.Mode == Sub || res.Mode == PubSub {
		st := res.Receive
		add("received", "%d messages: %s msg/s, %s/s", res.Received, rate(res.ReceiveRate), bytesText(res.RecvBytesRate))
		add("lost, duplicated, reordered", "%d (%d of them dropped by this process's clients), %d, %d", res.Lost, res.ClientDropped, st.Duplicates, st.Reordered)
		if st.NoHeader > 0 || st.Untracked > 0 || st.ClockSkew > 0 {
			add("not counted", "%d without a benchmark header, %d beyond %d streams, %d with a send time in the future (clock skew)", st.NoHeader, st.Untracked, MaxStreams, st.ClockSkew)
		}
		add("latency", "%s", percentileText(res.Latency))
	}
	if res.Mode == Conn && res.Connected > 0 {
		add("memory per connection", "%s heap, %.1f goroutines", bytesText(res.Memory.HeapPerConnection), res.Memory.GoroutinesPerConnect)
	}
	add("process", "CPU %.0f %% of one core (user %.2f s, system %.2f s); heap %s; RSS %s, peak %s",
		res.CPU.Percent, res.CPU.User, res.CPU.System, bytesText(float64(res.Memory.HeapConnected)), bytesText(float64(res.Memory.RSS)), bytesText(float64(res.Memory.PeakRSS)))
	for _, e := range res.Errors {
		add("error", "%s", e)
	}
	return rows
}

func percentileText(p Percentiles) string {
	if p.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("p50 %s, p90 %s, p99 %s, p99.9 %s, max %s", micros(p.P50), micros(p.P90), micros(p.P99), micros(p.P999), micros(p.Max))
}

func micros(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2f s", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.2f ms", us/1e3)
	default:
		return fmt.Sprintf("%.0f µs", us)
	}
}

func rate(v float64) string {
	if v >= 1e4 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func bytesText(v float64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.1f GiB", v/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", v)
	}
}
