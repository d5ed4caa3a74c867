package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
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

// WriteTable writes the report for a person: one aligned line per check (status, id, observed), under a
// non-PASS line why it matters and how to fix it, then a summary line.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tCHECK\tOBSERVED")
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Status, c.ID, oneLine(c.Observed))
		if c.Status == Pass {
			continue
		}
		if c.Why != "" {
			fmt.Fprintf(tw, "\t\twhy: %s\n", oneLine(c.Why))
		}
		if c.Fix != "" {
			fmt.Fprintf(tw, "\t\tfix: %s\n", oneLine(c.Fix))
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing the report table: %w", err)
	}
	_, err := fmt.Fprintf(w, "\n%d checks: %d PASS, %d WARN, %d FAIL\n", len(r.Checks), r.Count(Pass), r.Count(Warn), r.Count(Fail))
	if err != nil {
		return fmt.Errorf("writing the report summary: %w", err)
	}
	return nil
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
