package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Status is the verdict of one check.
type Status string

// The three verdicts, in rising severity.
const (
	// Pass means the setting supports the sidecar's no-loss promise.
	Pass Status = "PASS"
	// Warn means the setting is risky or could not be read; nothing is known to be lost.
	Warn Status = "WARN"
	// Fail means the setting can lose records or deliver them twice; `doctor` exits 1.
	Fail Status = "FAIL"
)

// severity orders statuses so the worst of several findings can be picked.
func (s Status) severity() int {
	switch s {
	case Fail:
		return 2
	case Warn:
		return 1
	}
	return 0
}

// Check is the result of one audit step.
type Check struct {
	// ID is stable across releases, e.g. "topic.replication:orders"; scripts may match on it.
	ID string `json:"id"`
	// Status is PASS, WARN or FAIL.
	Status Status `json:"status"`
	// Observed is what was found, with its source where that matters ("min.insync.replicas=1 (topic override)").
	Observed string `json:"observed"`
	// Why explains what the setting means for the sidecar's promise.
	Why string `json:"why"`
	// Fix is the exact change to make; empty when the check passed.
	Fix string `json:"fix"`
}

// Report is every check of one run, in the order they ran.
type Report struct {
	// Checks is never nil after Run, so the JSON document always holds an array.
	Checks []Check `json:"checks"`
}

// Failed reports whether any check failed, which makes `doctor` exit 1.
func (r Report) Failed() bool {
	for _, c := range r.Checks {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// Count returns how many checks have status s.
func (r Report) Count(s Status) int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == s {
			n++
		}
	}
	return n
}

// Find returns the check with the given ID and whether there is one.
func (r Report) Find(id string) (Check, bool) {
	for _, c := range r.Checks {
		if c.ID == id {
			return c, true
		}
	}
	return Check{}, false
}

// TableWidth is the widest line WriteTable writes: it fits a terminal and a CI log without wrapping.
const TableWidth = 100

// checkColumnMax bounds the CHECK column; a longer ID puts its observation on the next line.
const checkColumnMax = 40

// WriteTable writes the report for a person, within TableWidth columns: one line per check (status, id,
// observed), under a non-PASS line why it matters and how to fix it, then a summary line. Long text wraps at
// spaces, continuing under its own start.
func (r Report) WriteTable(w io.Writer) error {
	idWidth := len("CHECK")
	for _, c := range r.Checks {
		if l := len(c.ID); l > idWidth && l <= checkColumnMax {
			idWidth = l
		}
	}
	const statusWidth = 8 // "STATUS" and two spaces
	obsCol := statusWidth + idWidth + 2
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s%-*s  %s\n", statusWidth, "STATUS", idWidth, "CHECK", "OBSERVED")
	for _, c := range r.Checks {
		head := fmt.Sprintf("%-*s%s", statusWidth, c.Status, c.ID)
		obs := oneLine(c.Observed)
		if len(c.ID) > idWidth {
			b.WriteString(head + "\n")
			writeWrapped(&b, 0, obsCol, obs)
		} else {
			b.WriteString(head)
			writeWrapped(&b, len(head), obsCol, obs)
		}
		if c.Status == Pass {
			continue
		}
		for _, part := range []struct{ label, text string }{{"why: ", c.Why}, {"fix: ", c.Fix}} {
			if part.text != "" {
				b.WriteString(strings.Repeat(" ", statusWidth) + part.label)
				writeWrapped(&b, statusWidth+len(part.label), statusWidth+len(part.label), oneLine(part.text))
			}
		}
	}
	fmt.Fprintf(&b, "\n%d checks: %d PASS, %d WARN, %d FAIL\n", len(r.Checks), r.Count(Pass), r.Count(Warn), r.Count(Fail))
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing the report table: %w", err)
	}
	return nil
}

// writeWrapped writes text after col columns already on the line, in lines of at most TableWidth columns, each
// continuation (and the first, when col is short of it) starting at column indent. Words break at spaces; a
// word longer than a whole line is cut.
func writeWrapped(b *strings.Builder, col, indent int, text string) {
	pad := func(n int) { b.WriteString(strings.Repeat(" ", n)) }
	if col < indent {
		pad(indent - col)
		col = indent
	}
	width := TableWidth - indent
	empty := true // nothing written after the indent on this line yet
	for _, word := range strings.Fields(text) {
		if !empty && col+1+len(word) > TableWidth {
			b.WriteByte('\n')
			pad(indent)
			col, empty = indent, true
		}
		for len(word) > width {
			if !empty {
				b.WriteByte('\n')
				pad(indent)
			}
			b.WriteString(word[:width] + "\n")
			pad(indent)
			word, col, empty = word[width:], indent, true
		}
		if !empty {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(word)
		col += len(word)
		empty = false
	}
	b.WriteByte('\n')
}

// WriteJSON writes the report as {"checks":[{"id","status","observed","why","fix"},...]}.
func (r Report) WriteJSON(w io.Writer) error {
	if r.Checks == nil {
		r.Checks = []Check{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("writing the report as JSON: %w", err)
	}
	return nil
}

// oneLine keeps a table row on one line and its tabs from starting new cells.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ", "\t", " ").Replace(s)
}
