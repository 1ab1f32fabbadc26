package web

import (
	"encoding/xml"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A chart is well-formed SVG with a title and a description naming each
// line's values, labelled axes, classes for colours and no style
// attribute (the Content-Security-Policy would refuse one).
func TestChartDrawsLabelledAccessibleSVG(t *testing.T) {
	from := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	to := from.Add(15 * time.Minute)
	c := Chart{ID: "svc-rps", Title: "Requests per second", Unit: "requests/s", From: from, To: to, MinTop: 1, Gap: 10 * time.Second,
		Series: []Series{
			{Name: "blue · tg1 · web:1", Class: "series-blue", Points: []Point{{from.Add(time.Minute), 10}, {from.Add(time.Minute + 3*time.Second), 12}, {from.Add(5 * time.Minute), 7}}},
			{Name: `green · tg2 · <b>web:2</b>`, Class: "series-green", Dashed: true, Points: []Point{{from.Add(2 * time.Minute), 3}}},
		}}
	html := string(c.HTML())
	svg := html[strings.Index(html, "<svg") : strings.Index(html, "</svg>")+len("</svg>")]
	if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
		t.Fatalf("not well-formed: %v\n%s", err, svg)
	}
	for _, want := range []string{
		`role="img" aria-labelledby="svc-rps-title svc-rps-desc"`,
		`<title id="svc-rps-title">Requests per second</title>`,
		`<desc id="svc-rps-desc">Requests per second from 12:00:00 to 12:15:00 UTC; blue · tg1 · web:1: now 7 requests/s, lowest 7, highest 12; green · tg2 · &lt;b&gt;web:2&lt;/b&gt;: now 3 requests/s, lowest 3, highest 3.</desc>`,
		`>requests/s</text>`, `>time (UTC)</text>`, `>12:00</text>`, `>12:15</text>`, `>12</text>`, `>6</text>`, // the axis: 12 at the top, 6 halfway
		`class="line series-blue"`, `class="dot series-green"`, `class="swatch series-green dashed"`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("chart lacks %s\n%s", want, html)
		}
	}
	if strings.Contains(html, "style=") || strings.Contains(html, "<b>") {
		t.Errorf("a style attribute or unescaped markup:\n%s", html)
	}
	// The first line breaks where its points are more than Gap apart.
	d := regexp.MustCompile(`class="line series-blue" d="([^"]*)"`).FindStringSubmatch(html)
	if d == nil || strings.Count(d[1], "M") != 1 || strings.Count(d[1], "L") != 1 || !strings.Contains(html, `<circle class="dot series-blue"`) {
		t.Errorf("blue's path %v: want a segment of two points, and the third alone as a dot", d)
	}
}

// Without points a chart still draws its frame, and says why it is empty.
func TestChartWithoutDataSaysSo(t *testing.T) {
	from := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []Chart{
		{ID: "a", Title: "p99 latency", Unit: "ms", From: from, To: from.Add(time.Minute), Empty: "no traffic yet"},
		{ID: "b", Title: "p99 latency", Unit: "ms", From: from, To: from, Empty: "no traffic yet", Series: []Series{{Name: "tg1"}}},
	} {
		html := string(c.HTML())
		if !strings.Contains(html, `class="chart-empty"`) || !strings.Contains(html, ">no traffic yet</text>") || !strings.Contains(html, "UTC: no traffic yet.</desc>") {
			t.Errorf("empty chart %s:\n%s", c.ID, html)
		}
		if strings.Contains(html, "NaN") || strings.Contains(html, "Inf") || strings.Contains(html, "<path") {
			t.Errorf("empty chart %s draws a line or a bad number:\n%s", c.ID, html)
		}
	}
}

func TestChartAxisTops(t *testing.T) {
	for _, c := range []struct {
		values  []float64
		integer bool
		want    float64
	}{
		{[]float64{0}, false, 1}, {[]float64{0.3}, false, 0.3}, {[]float64{0.31}, false, 0.4}, {[]float64{1.2}, false, 1.2}, {[]float64{2.2}, false, 2.5},
		{[]float64{4.1}, false, 5}, {[]float64{51}, false, 60}, {[]float64{1020}, false, 1200}, {[]float64{3}, true, 4}, {[]float64{2}, true, 2},
	} {
		ch := Chart{MinTop: 0, Integer: c.integer}
		for _, v := range c.values {
			ch.Series = append(ch.Series, Series{Points: []Point{{V: v}}})
		}
		if got := ch.top(); got != c.want {
			t.Errorf("top of %v (integer %v) = %v, want %v", c.values, c.integer, got, c.want)
		}
	}
}
