package web

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
)

// Chart is a small time series plot, drawn on the server as inline SVG: no
// script draws it, so it shows as soon as the page does and a live update
// is a fragment like any other. Colours are classes (series-blue, …) that
// the stylesheet sets for the light and the dark scheme; the SVG carries no
// style attribute, which the Content-Security-Policy would refuse.
type Chart struct {
	// ID is unique in the page; the ids of the SVG's title and
	// description are made from it.
	ID string
	// Title names the plot ("Requests per second"); Unit labels the y axis
	// ("requests/s").
	Title, Unit string
	// From and To bound the time axis.
	From, To time.Time
	Series   []Series
	// Empty is drawn in the plot, and said in its description, when no
	// series has a point ("no traffic yet").
	Empty string
	// MinTop is the least top of the y axis, so that small values do not
	// fill the plot.
	MinTop float64
	// Integer makes the y axis count (tasks).
	Integer bool
	// Gap is the longest time between two points that are joined; points
	// further apart (the sampler paused) leave a gap. 0 joins all.
	Gap time.Duration
}

// Series is one line of a chart.
type Series struct {
	// Name is the line's legend and its name in the description.
	Name string
	// Class colours it: series-blue, series-green, series-live,
	// series-old, series-new, series-desired.
	Class  string
	Dashed bool
	Points []Point
}

// Point is one value at one time.
type Point struct {
	At time.Time
	V  float64
}

// The plot's geometry, in the SVG's user units; it scales to the width it
// is given, keeping its proportions.
const (
	chartW, chartH              = 420.0, 200.0
	padLeft, padRight           = 46.0, 12.0
	padTop, padBottom           = 22.0, 40.0
	plotW                       = chartW - padLeft - padRight
	plotH                       = chartH - padTop - padBottom
	chartFont                   = 11
	chartFontSmall              = 10
	chartTimeLayout, chartShort = "15:04:05", "15:04"
)

// HTML draws the chart as a figure: the SVG (with a title and a
// description for screen readers) and a legend giving each line's latest
// value.
func (c Chart) HTML() template.HTML {
	id := chartID(c.ID)
	esc := template.HTMLEscapeString
	var b strings.Builder
	top := c.top()
	empty := !c.hasPoints()
	unit := c.Unit
	fmt.Fprintf(&b, `<figure class="chart" id="%s"><figcaption><span class="chart-title">%s</span>`, id, esc(c.Title))
	if !empty {
		b.WriteString(`<ul class="legend">`)
		for _, s := range c.Series {
			latest := "no value"
			if len(s.Points) > 0 {
				latest = c.value(s.Points[len(s.Points)-1].V) + " " + unit
			}
			dash := ""
			if s.Dashed {
				dash = " dashed"
			}
			fmt.Fprintf(&b, `<li><span class="swatch %s%s" aria-hidden="true"></span>%s <span class="latest">%s</span></li>`, chartClass(s.Class), dash, esc(s.Name), esc(latest))
		}
		b.WriteString(`</ul>`)
	}
	b.WriteString(`</figcaption>`)
	fmt.Fprintf(&b, `<svg class="chart-svg" viewBox="0 0 %g %g" role="img" aria-labelledby="%s-title %s-desc" focusable="false">`, chartW, chartH, id, id)
	fmt.Fprintf(&b, `<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>`, id, esc(c.Title), id, esc(c.describe()))
	// Axes, grid and their labels.
	fmt.Fprintf(&b, `<text class="axis-title" x="%g" y="%g">%s</text>`, padLeft, padTop-8, esc(unit))
	for i := 0; i <= 2; i++ {
		v := top * float64(i) / 2
		y := padTop + plotH - plotH*float64(i)/2
		if i > 0 {
			fmt.Fprintf(&b, `<line class="grid" x1="%g" y1="%.1f" x2="%g" y2="%.1f"/>`, padLeft, y, padLeft+plotW, y)
		}
		fmt.Fprintf(&b, `<text class="tick" x="%g" y="%.1f" text-anchor="end">%s</text>`, padLeft-5, y+4, esc(c.value(v)))
	}
	fmt.Fprintf(&b, `<line class="axis" x1="%g" y1="%g" x2="%g" y2="%g"/>`, padLeft, padTop, padLeft, padTop+plotH)
	fmt.Fprintf(&b, `<line class="axis" x1="%g" y1="%g" x2="%g" y2="%g"/>`, padLeft, padTop+plotH, padLeft+plotW, padTop+plotH)
	layout := chartShort
	if c.To.Sub(c.From) < 5*time.Minute {
		layout = chartTimeLayout
	}
	for i, anchor := range []string{"start", "middle", "end"} {
		at := c.From.Add(c.To.Sub(c.From) * time.Duration(i) / 2)
		x := padLeft + plotW*float64(i)/2
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%g" text-anchor="%s">%s</text>`, x, padTop+plotH+15, anchor, at.UTC().Format(layout))
	}
	fmt.Fprintf(&b, `<text class="axis-title" x="%g" y="%g" text-anchor="middle">time (UTC)</text>`, padLeft+plotW/2, chartH-6)
	if empty {
		fmt.Fprintf(&b, `<text class="chart-empty" x="%g" y="%g" text-anchor="middle">%s</text>`, padLeft+plotW/2, padTop+plotH/2+4, esc(c.Empty))
	}
	for _, s := range c.Series {
		c.drawSeries(&b, s, top)
	}
	b.WriteString(`</svg></figure>`)
	return template.HTML(b.String())
}

// drawSeries draws a line as segments broken where points are more than
// Gap apart; a point alone is a dot.
func (c Chart) drawSeries(b *strings.Builder, s Series, top float64) {
	type xy struct{ x, y float64 }
	var segs [][]xy
	var prev time.Time
	for _, p := range s.Points {
		if p.At.Before(c.From) || p.At.After(c.To) || math.IsNaN(p.V) || math.IsInf(p.V, 0) {
			continue
		}
		if len(segs) == 0 || (c.Gap > 0 && p.At.Sub(prev) > c.Gap) {
			segs = append(segs, nil)
		}
		segs[len(segs)-1] = append(segs[len(segs)-1], xy{c.x(p.At), c.y(p.V, top)})
		prev = p.At
	}
	class := chartClass(s.Class)
	var d strings.Builder
	for _, seg := range segs {
		if len(seg) == 1 {
			fmt.Fprintf(b, `<circle class="dot %s" cx="%.1f" cy="%.1f" r="2.5"/>`, class, seg[0].x, seg[0].y)
			continue
		}
		for i, p := range seg {
			op := "L"
			if i == 0 {
				op = "M"
			}
			fmt.Fprintf(&d, "%s%.1f %.1f", op, p.x, p.y)
		}
	}
	if d.Len() > 0 {
		if s.Dashed {
			class += " dashed"
		}
		fmt.Fprintf(b, `<path class="line %s" d="%s"/>`, class, d.String())
	}
}

func (c Chart) x(t time.Time) float64 {
	span := c.To.Sub(c.From)
	if span <= 0 {
		return padLeft + plotW
	}
	return padLeft + plotW*float64(t.Sub(c.From))/float64(span)
}

func (c Chart) y(v, top float64) float64 {
	if top <= 0 {
		return padTop + plotH
	}
	return padTop + plotH - plotH*math.Max(0, math.Min(v, top))/top
}

func (c Chart) hasPoints() bool {
	for _, s := range c.Series {
		for _, p := range s.Points {
			if !p.At.Before(c.From) && !p.At.After(c.To) {
				return true
			}
		}
	}
	return false
}

// top is the y axis's top: a round number at or above every value.
func (c Chart) top() float64 {
	m := c.MinTop
	for _, s := range c.Series {
		for _, p := range s.Points {
			if !math.IsNaN(p.V) && !math.IsInf(p.V, 0) && p.V > m {
				m = p.V
			}
		}
	}
	if m <= 0 {
		m = 1
	}
	if c.Integer {
		m = math.Ceil(m)
		if int(m)%2 == 1 && m > 1 {
			m++ // halves stay whole
		}
		return m
	}
	return niceCeil(m)
}

// niceCeil rounds v up to 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a
// power of ten: numbers whose half reads well too.
func niceCeil(v float64) float64 {
	exp := math.Floor(math.Log10(v))
	base := math.Pow(10, exp)
	for _, f := range []float64{1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if v <= f*base*(1+1e-9) {
			top, _ := strconv.ParseFloat(strconv.FormatFloat(f*base, 'g', 12, 64), 64) // 0.3, not 0.30000000000000004
			return top
		}
	}
	return 10 * base
}

// value formats a value for a tick or the legend: whole counts as such,
// rates with the digits that matter.
func (c Chart) value(v float64) string {
	if c.Integer {
		return strconv.Itoa(int(math.Round(v)))
	}
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 100:
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	case a >= 10:
		return trimZeros(strconv.FormatFloat(v, 'f', 1, 64))
	case a >= 0.1:
		return trimZeros(strconv.FormatFloat(v, 'f', 2, 64))
	}
	return strconv.FormatFloat(v, 'g', 2, 64)
}

// trimZeros drops a decimal part's trailing zeros: "12.0" → "12".
func trimZeros(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}

// describe says in words what the plot shows, for a screen reader.
func (c Chart) describe() string {
	span := fmt.Sprintf("%s from %s to %s UTC", c.Title, c.From.UTC().Format(chartTimeLayout), c.To.UTC().Format(chartTimeLayout))
	if !c.hasPoints() {
		return span + ": " + c.Empty + "."
	}
	parts := []string{span}
	for _, s := range c.Series {
		if len(s.Points) == 0 {
			parts = append(parts, s.Name+": no value")
			continue
		}
		lo, hi := s.Points[0].V, s.Points[0].V
		for _, p := range s.Points {
			lo, hi = math.Min(lo, p.V), math.Max(hi, p.V)
		}
		parts = append(parts, fmt.Sprintf("%s: now %s %s, lowest %s, highest %s", s.Name, c.value(s.Points[len(s.Points)-1].V), c.Unit, c.value(lo), c.value(hi)))
	}
	return strings.Join(parts, "; ") + "."
}

// chartID keeps an id to letters, digits and dashes.
func chartID(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, s)
}

// chartClass keeps a colour class to the known ones.
func chartClass(s string) string {
	switch s {
	case "series-blue", "series-green", "series-live", "series-old", "series-new", "series-desired":
		return s
	}
	return "series-live"
}
