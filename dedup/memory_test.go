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

func TestMemoryDefaults(t *testing.T) {
	clock := newFakeClock()
	m := dedup.NewMemory(dedup.MemoryOptions{Now: clock.Now})
	if !strings.HasPrefix(m.Owner(), "random-") {
		t.Fatalf("Owner() = %q, want a random owner", m.Owner())
	}
	other := m.Shared(dedup.MemoryOptions{Owner: "other"})
	ctx := context.Background()
	if _, err := m.Claim(ctx, []string{"x"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		advance time.Duration
		want    dedup.Status
	}{
		{"lease lives DefaultLease", dedup.DefaultLease, dedup.Busy},
		{"and no longer", time.Millisecond, dedup.Claimed},
	} {
		clock.Advance(tc.advance)
		if st, err := other.Claim(ctx, []string{"x"}); err != nil || st[0] != tc.want {
			t.Fatalf("%s: other owner's claim = %v, %v; want %v", tc.name, st, err, tc.want)
		}
	}
	if err := other.Complete(ctx, []string{"x"}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(dedup.DefaultTTL)
	if st, _ := m.Claim(ctx, []string{"x"}); st[0] != dedup.Done {
		t.Fatalf("claim at DefaultTTL = %v, want done", st[0])
	}
	clock.Advance(time.Millisecond)
	if st, _ := m.Claim(ctx, []string{"x"}); st[0] != dedup.Claimed {
		t.Fatalf("claim after DefaultTTL = %v, want claimed", st[0])
	}
}

// TestMemorySweepsExpired checks that expired entries do not pile up: a long-running single replica writes a
// done mark per record, and the table must stay near its live size.
func TestMemorySweepsExpired(t *testing.T) {
	clock := newFakeClock()
	m := dedup.NewMemory(dedup.MemoryOptions{Owner: "a", TTL: time.Minute, Now: clock.Now})
	ctx := context.Background()
	for round := range 20 {
		batch := make([]string, 1000)
		for i := range batch {
			batch[i] = fmt.Sprintf("%d/%d", round, i)
		}
		if err := m.Complete(ctx, batch); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Minute + time.Millisecond) // everything so far expires
	}
	if got := m.Len(); got != 0 {
		t.Fatalf("Len() = %d after everything expired, want 0", got)
	}
	if got := dedup.MemoryTableSize(m); got > 4*1000 {
		t.Fatalf("table holds %d entries with at most 1000 live at a time, want it swept", got)
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
	if err := a.Complete(ctx, []string{"x"}); !errors.Is(err, dedup.ErrClosed) {
		t.Fatalf("Complete after Close = %v, want ErrClosed", err)
	}
	if err := a.Release(ctx, []string{"x"}); !errors.Is(err, dedup.ErrClosed) {
		t.Fatalf("Release after Close = %v, want ErrClosed", err)
	}
	if st, err := b.Claim(ctx, []string{"x"}); err != nil || st[0] != dedup.Claimed {
		t.Fatalf("claim through another view after Close = %v, %v; want claimed", st, err)
	}
}

func TestOff(t *testing.T) {
	s := dedup.Off()
	ctx := context.Background()
	ids := []string{"x", "x", "y"}
	for range 2 {
		st, err := s.Claim(ctx, ids)
		if err != nil || len(st) != len(ids) {
			t.Fatalf("Claim = %v, %v", st, err)
		}
		for i, got := range st {
			if got != dedup.Claimed {
				t.Fatalf("status %d = %v, want claimed: Off suppresses nothing", i, got)
			}
		}
		if err := s.Complete(ctx, ids); err != nil {
			t.Fatal(err)
		}
	}
	for name, err := range map[string]error{
		"Release": s.Release(ctx, ids), "Ping": s.Ping(ctx), "Close": s.Close(),
	} {
		if err != nil {
			t.Fatalf("%s = %v, want nil", name, err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Claim(cancelled, ids); !errors.Is(err, context.Canceled) {
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
