package main

import (
	"fmt"
	"image/color"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/fennec-mqtt/fennec/benchmarks"
)

// chartFigures are the panels of -chart: throughput and latency, each a grouped bar chart with
// one group per transport and one bar per client.
var chartFigures = []struct{ figure, title, unit string }{
	{fQoS0, "QoS 0 throughput", "messages per second received"},
	{fQoS1, "QoS 1 throughput", "messages per second received"},
	{fP50, "QoS 1 round trip p50", "microseconds"},
	{fP99, "QoS 1 round trip p99", "microseconds"},
}

var palette = []color.Color{
	color.RGBA{0x8c, 0x8c, 0x8c, 0xff}, color.RGBA{0xb4, 0xb4, 0xb4, 0xff}, color.RGBA{0x3b, 0x75, 0xaf, 0xff},
	color.RGBA{0x7a, 0xa6, 0xd6, 0xff}, color.RGBA{0xe1, 0x81, 0x2c, 0xff}, color.RGBA{0x3a, 0x92, 0x3a, 0xff},
	color.RGBA{0xc0, 0x3d, 0x3e, 0xff},
}

// writeChart draws the medians of res as an SVG file (PNG when path ends in .png): one panel per figure of chartFigures,
// bars per client, grouped by transport.
func writeChart(path string, res *results, libs []benchmarks.Library, transports []string, runs int) error {
	const w, h = 11 * vg.Inch, 8 * vg.Inch
	var img vg.CanvasWriterTo
	if strings.HasSuffix(path, ".png") {
		img = vgimg.PngCanvas{Canvas: vgimg.New(w, h)}
	} else {
		img = vgsvg.New(w, h)
	}
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 2, PadX: vg.Millimeter * 6, PadY: vg.Millimeter * 6, PadTop: vg.Millimeter * 4,
		PadBottom: vg.Millimeter * 4, PadLeft: vg.Millimeter * 4, PadRight: vg.Millimeter * 4}
	for i, cf := range chartFigures {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s (medians of %d runs)", cf.title, runs)
		p.Y.Label.Text = cf.unit
		p.Y.Min = 0
		p.NominalX(transports...)
		var shown []benchmarks.Library
		for _, l := range libs {
			for _, tr := range transports {
				if len(res.vals[key{tr, l.Short(), cf.figure}]) > 0 {
					shown = append(shown, l)
					break
				}
			}
		}
		top := 0.0
		for _, l := range shown {
			for _, tr := range transports {
				top = max(top, median(res.vals[key{tr, l.Short(), cf.figure}]))
			}
		}
		p.Y.Max = top * 1.45 // room for the legend above the bars
		barW := vg.Points(min(18, 220/float64(max(len(shown), 1))))
		for k, l := range shown {
			vals := make(plotter.Values, len(transports))
			for j, tr := range transports {
				vals[j] = median(res.vals[key{tr, l.Short(), cf.figure}])
			}
			bars, err := plotter.NewBarChart(vals, barW)
			if err != nil {
				return fmt.Errorf("chart %s: %w", cf.title, err)
			}
			bars.Color = palette[k%len(palette)]
			bars.LineStyle.Width = 0
			bars.Offset = barW * vg.Length(float64(k)-float64(len(shown)-1)/2)
			p.Add(bars)
			p.Legend.Add(l.Short(), bars)
		}
		p.Legend.Top = true
		p.Legend.Left = true
		p.Legend.Padding = vg.Points(1)
		p.Add(plotter.NewGrid())
		p.Draw(tiles.At(dc, i%2, i/2))
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := img.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
