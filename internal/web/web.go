// Package web renders Slipway's web UI: server-side html/template pages
// and fragments, with a little vanilla JavaScript for live updates, all
// embedded in the binary.
package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Renderer holds one parsed template set per page, each with the layout.
type Renderer struct {
	pages map[string]*template.Template
}

// New parses every page with the layout and the shared fragments.
func New() (*Renderer, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	r := &Renderer{pages: map[string]*template.Template{}}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || base == "fragments" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/fragments.html", n)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", n, err)
		}
		r.pages[base] = t
	}
	return r, nil
}

// Page writes a whole page.
func (r *Renderer) Page(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	t, ok := r.pages[name]
	if !ok {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		http.Error(w, "render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	SecurityHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// Fragment renders one named template of a page, for live updates.
func (r *Renderer) Fragment(page, name string, data any) (string, error) {
	t, ok := r.pages[page]
	if !ok {
		return "", fmt.Errorf("no page %s", page)
	}
	var buf bytes.Buffer
	err := t.ExecuteTemplate(&buf, name, data)
	return buf.String(), err
}

// SecurityHeaders keeps pages from being framed and scripts to our own files.
func SecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
}

// Static serves the embedded CSS and JavaScript under /static/.
func Static() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.FileServer(http.FS(sub))
	return http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	}))
}

var funcs = template.FuncMap{
	"dur":  dur,
	"when": when,
	"whenp": func(t *time.Time) template.HTML {
		if t == nil {
			return "–"
		}
		return when(*t)
	},
	"short": func(s string) string {
		s = strings.TrimPrefix(s, "sha256:")
		if len(s) > 12 {
			return s[:12]
		}
		return s
	},
	"size":    Size,
	"lower":   strings.ToLower,
	"join":    strings.Join,
	"console": ConsoleText,
}

// Size formats a byte count as people read it (KiB, MiB, GiB).
func Size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func dur(start, end *time.Time) string {
	if start == nil {
		return "–"
	}
	e := time.Now()
	if end != nil {
		e = *end
	}
	d := e.Sub(*start)
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return d.Round(time.Minute).String()
}

// when shows an instant as a <time> element: the absolute UTC time as its
// text and title, which app.js turns into a relative time ("3 min ago")
// keeping the absolute one on hover.
func when(t time.Time) template.HTML {
	if t.IsZero() {
		return "–"
	}
	abs := t.UTC().Format("2006-01-02 15:04:05 UTC")
	return template.HTML(`<time datetime="` + t.UTC().Format(time.RFC3339) + `" title="` + abs + `" data-rel>` + abs + `</time>`)
}
