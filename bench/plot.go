package main

import (
	"fmt"
	"math"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// drawChart writes c as <stem>.png and <stem>.svg and returns the two
// paths. Points with NaN values (and, on a log axis, values <= 0) are left
// out; a series left with no point is not drawn.
func drawChart(c Chart, stem string) ([]string, error) {
	p := plot.New()
	p.Title.Text = c.Title
	p.X.Label.Text = c.X
	p.Y.Label.Text = c.Y
	p.Legend.Top = true
	p.Legend.Left = true
	if c.LogY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	p.Add(plotter.NewGrid())
	drawn := 0
	xs := map[float64]bool{}
	for i, s := range c.Series {
		var pts plotter.XYs
		for j := range s.X {
			y := s.Y[j]
			if math.IsNaN(y) || math.IsInf(y, 0) || c.LogY && y <= 0 {
				continue
			}
			pts = append(pts, plotter.XY{X: s.X[j], Y: y})
			xs[s.X[j]] = true
		}
		if len(pts) == 0 {
			continue
		}
		l, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i / 7)
		sc.Color = plotutil.Color(i)
		sc.Shape = plotutil.Shape(i)
		p.Add(l, sc)
		p.Legend.Add(s.Name, l, sc)
		drawn++
	}
	if drawn == 0 {
		return nil, nil
	}
	// Ticks at the measured x values (stream counts, sizes).
	var ticks []plot.Tick
	for x := range xs {
		ticks = append(ticks, plot.Tick{Value: x, Label: fmt.Sprint(x)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	if !c.LogY {
		p.Y.Min = math.Min(p.Y.Min, 0)
	}
	var out []string
	for _, ext := range []string{".png", ".svg"} {
		path := stem + ext
		if err := p.Save(7*vg.Inch, 4.5*vg.Inch, path); err != nil {
			return out, fmt.Errorf("%s: %w", filepath.Base(path), err)
		}
		out = append(out, path)
	}
	return out, nil
}
