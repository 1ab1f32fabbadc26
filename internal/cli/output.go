package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// printer writes either a table (for people) or JSON (for scripts).
type printer struct {
	w    io.Writer
	json bool
}

func outputOf(cmd *cobra.Command) (printer, error) {
	format, _ := cmd.Flags().GetString("output")
	switch format {
	case "table", "":
		return printer{w: cmd.OutOrStdout()}, nil
	case "json":
		return printer{w: cmd.OutOrStdout(), json: true}, nil
	}
	return printer{}, fmt.Errorf("--output %q is not supported; use table or json", format)
}

// emit prints v as JSON, or calls table to render it for people.
func (p printer) emit(v any, table func(t *tabwriter.Writer)) error {
	if p.json {
		enc := json.NewEncoder(p.w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// jsonLine prints v as one line of JSON: the shape of streamed reads
// (logs), so each line can be handed on as it comes.
func (p printer) jsonLine(v any) error {
	return json.NewEncoder(p.w).Encode(v)
}

func row(w io.Writer, cols ...any) {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = fmt.Sprint(c)
	}
	fmt.Fprintln(w, strings.Join(parts, "\t"))
}

func ago(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return humanTime(*t)
}

func humanTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func duration(start, end *time.Time) string {
	if start == nil {
		return "-"
	}
	e := time.Now()
	if end != nil {
		e = *end
	}
	return e.Sub(*start).Round(time.Millisecond).String()
}

// read GETs path and prints the answer: as JSON with --output json, else as
// table draws it.
func read[T any](cmd *cobra.Command, path string, table func(w *tabwriter.Writer, v T)) error {
	c, p, err := setup(cmd)
	if err != nil {
		return err
	}
	var v T
	if err := c.Do(cmd.Context(), "GET", path, nil, &v); err != nil {
		return err
	}
	return p.emit(v, func(w *tabwriter.Writer) { table(w, v) })
}
