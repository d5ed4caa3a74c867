package dedup_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/dedup"
)

// rec is a record without an ID of its own at offset o of partition 0 of "orders".
func rec(o int64) dedup.Mark {
	return dedup.Mark{Topic: "orders", Epoch: 1, Offset: o, ID: fmt.Sprintf("orders/0/%d", o)}
}

// msg is a record with the ID of its own id at offset o.
func msg(id string, o int64) dedup.Mark {
	m := rec(o)
	m.ID, m.OwnID = id, true
	return m
}

func apply(t *testing.T, s dedup.Store, ops dedup.Ops) []dedup.Status {
	t.Helper()
	st, err := s.Apply(context.Background(), ops)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return st
}

func TestMemoryDefaults(t *testing.T) {
	clock := newFakeClock()
	m := dedup.NewMemory(dedup.MemoryOptions{Now: clock.Now})
	if !strings.HasPrefix(m.Owner(), "random-") {
		t.Fatalf("Owner() = %q, want a random owner", m.Owner())
	}
	other := m.Shared(dedup.MemoryOptions{Owner: "other"})
	apply(t, m, dedup.Ops{Claim: []dedup.Mark{msg("x", 1)}})
	for _, tc := range []struct {
		name    string
		advance time.Duration
		want    dedup.Status
	}{
		{"lease lives DefaultLease", dedup.DefaultLease, dedup.Busy},
		{"and no longer", time.Millisecond, dedup.Claimed},
	} {
		clock.Advance(tc.advance)
		if st := apply(t, other, dedup.Ops{Claim: []dedup.Mark{msg("x", 1)}}); st[0] != tc.want {
			t.Fatalf("%s: other owner's claim = %v; want %v", tc.name, st, tc.want)
		}
	}
	apply(t, other, dedup.Ops{Complete: []dedup.Mark{msg("x", 1)}})
	for _, tc := range []struct {
		name    string
		advance time.Duration
		probe   dedup.Mark
		want    dedup.Status
	}{
		{"ID mark lives DefaultIDTTL", dedup.DefaultIDTTL, msg("x", 2), dedup.Done},
		{"and no longer", time.Millisecond, msg("x", 3), dedup.Claimed},
		{"position mark lives DefaultTTL and its slack", dedup.DefaultTTL + dedup.PositionMarkSlack(dedup.DefaultTTL) -
			dedup.DefaultIDTTL - time.Millisecond, msg("x", 1), dedup.Done},
		{"and no longer", time.Millisecond, rec(1), dedup.Claimed},
	} {
		clock.Advance(tc.advance)
		if st := apply(t, m, dedup.Ops{Claim: []dedup.Mark{tc.probe}}); st[0] != tc.want {
			t.Fatalf("%s: claim = %v, want %v", tc.name, st[0], tc.want)
		}
	}
}

// TestMemorySweepsExpired checks that expired marks do not pile up: a long-running single replica writes a
// position mark per record and an ID mark per record with an ID, and the table must stay near its live size.
func TestMemorySweepsExpired(t *testing.T) {
	clock := newFakeClock()
	m := dedup.NewMemory(dedup.MemoryOptions{Owner: "a", TTL: time.Minute, IDTTL: time.Minute, Now: clock.Now})
	var peak int64
	for round := range 50 {
		batch := make([]dedup.Mark, 1000)
		for i := range batch {
			o := int64(round)*dedup.ChunkOffsets + int64(i)
			batch[i] = msg(fmt.Sprintf("%d/%d", round, i), o)
		}
		apply(t, m, dedup.Ops{Complete: batch})
		peak = max(peak, m.Bytes())
		clock.Advance(time.Minute + time.Millisecond) // everything so far expires
	}
	// One round's live marks: a chunk and 1000 ID entries, about 0.1 MiB; the sweep keeps at most about
	// twice the live size or 1 MiB.
	if peak > 4<<20 {
		t.Fatalf("table peaked at %d bytes with about 0.1 MiB live at a time, want it swept", peak)
	}
}

// TestMemoryBoundPauses fills a small memory store: at the bound it answers ErrUnavailable (delivery pauses),
// never "not seen" for what it holds, and works again once marks expire.
func TestMemoryBoundPauses(t *testing.T) {
	clock := newFakeClock()
	const bound = 2 << 20
	m := dedup.NewMemory(dedup.MemoryOptions{Owner: "a", TTL: time.Hour, IDTTL: time.Hour, MaxBytes: bound,
		Now: clock.Now})
	ctx := context.Background()
	var written []dedup.Mark
	var full error
	for i := range 100_000 {
		// IDs of 100 bytes: about 200 bytes each counted.
		mk := msg(fmt.Sprintf("%0100d", i), int64(i))
		if _, err := m.Apply(ctx, dedup.Ops{Complete: []dedup.Mark{mk}}); err != nil {
			full = err
			break
		}
		written = append(written, mk)
	}
	if !errors.Is(full, dedup.ErrUnavailable) {
		t.Fatalf("writing past the bound = %v, want ErrUnavailable", full)
	}
	if b := m.Bytes(); b < bound || b > bound+bound/10 {
		t.Fatalf("full at %d bytes, want about the bound %d", b, bound)
	}
	// A claim of a record it holds answers "unavailable", not "claimed".
	if _, err := m.Apply(ctx, dedup.Ops{Claim: written[:1]}); !errors.Is(err, dedup.ErrUnavailable) {
		t.Fatalf("claim on a full store = %v, want ErrUnavailable", err)
	}
	// Releases still go through: they only free.
	if _, err := m.Apply(ctx, dedup.Ops{Release: written[:1]}); err != nil {
		t.Fatalf("release on a full store: %v", err)
	}
	clock.Advance(time.Hour + dedup.PositionMarkSlack(time.Hour) + time.Millisecond)
	if st := apply(t, m, dedup.Ops{Claim: written[:1]}); st[0] != dedup.Claimed {
		t.Fatalf("claim after the marks expired = %v, want claimed", st[0])
	}
	if b := m.Bytes(); b > bound/2 {
		t.Fatalf("%d bytes after everything expired, want the table swept", b)
	}
}

func TestMemoryCloseOneView(t *testing.T) {
	a := dedup.NewMemory(dedup.MemoryOptions{Owner: "a"})
	b := a.Shared(dedup.MemoryOptions{Owner: "b"})
	ctx := context.Background()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Ping(ctx); !errors.Is(err, dedup.ErrClosed) {
		t.Fatalf("Ping after Close = %v, want ErrClosed", err)
	}
	if _, err := a.Apply(ctx, dedup.Ops{Complete: []dedup.Mark{rec(1)}}); !errors.Is(err, dedup.ErrClosed) {
		t.Fatalf("Complete after Close = %v, want ErrClosed", err)
	}
	if err := a.ReleasePartitions(ctx, map[string][]int32{"orders": {0}}); !errors.Is(err, dedup.ErrClosed) {
		t.Fatalf("ReleasePartitions after Close = %v, want ErrClosed", err)
	}
	if st := apply(t, b, dedup.Ops{Claim: []dedup.Mark{rec(1)}}); st[0] != dedup.Claimed {
		t.Fatalf("claim through another view after Close = %v; want claimed", st)
	}
}

func TestOff(t *testing.T) {
	s := dedup.Off()
	ctx := context.Background()
	ms := []dedup.Mark{rec(1), rec(1), msg("y", 2)}
	for range 2 {
		st := apply(t, s, dedup.Ops{Claim: ms})
		if len(st) != len(ms) {
			t.Fatalf("Claim = %v", st)
		}
		for i, got := range st {
			if got != dedup.Claimed {
				t.Fatalf("status %d = %v, want claimed: Off suppresses nothing", i, got)
			}
		}
		apply(t, s, dedup.Ops{Complete: ms, Park: ms})
	}
	for name, err := range map[string]error{
		"Release":           func() error { _, err := s.Apply(ctx, dedup.Ops{Release: ms}); return err }(),
		"ReleasePartitions": s.ReleasePartitions(ctx, map[string][]int32{"orders": {0}}),
		"Ping":              s.Ping(ctx), "Close": s.Close(),
	} {
		if err != nil {
			t.Fatalf("%s = %v, want nil", name, err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Apply(cancelled, dedup.Ops{Claim: ms}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Claim with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestStatusString(t *testing.T) {
	for st, want := range map[dedup.Status]string{
		dedup.Claimed: "claimed", dedup.Done: "done", dedup.Busy: "busy", dedup.Status(9): "unknown",
	} {
		if got := st.String(); got != want {
			t.Fatalf("Status(%d).String() = %q, want %q", st, got, want)
		}
	}
}
