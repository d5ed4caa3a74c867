package chaos

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// TestClassShares proves the seed gives poison and doomed IDs their documented shares (within a few
// standard deviations), so a run's expected dead letters are what the rates promise.
func TestClassShares(t *testing.T) {
	const n = 100000
	for _, seed := range []int64{1, 7, 42, -3} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			counts := map[Class]int{}
			for i := range n {
				counts[ClassOf(seed, fmt.Sprintf("id-%07d", i))]++
			}
			for _, c := range []struct {
				class Class
				rate  float64
			}{{Poison, PoisonRate}, {Doomed, DoomedRate}} {
				want := c.rate * n
				tol := 5 * math.Sqrt(want)
				if got := float64(counts[c.class]); math.Abs(got-want) > tol {
					t.Errorf("%v: %d of %d IDs, want %.0f ± %.0f", c.class, counts[c.class], n, want, tol)
				}
			}
		})
	}
}

// TestClassIsDeterministic proves an ID's class and flaky attempts depend on the seed and the ID only: a
// second pass over the same IDs, after other seeds were used in between, gives the same answers.
func TestClassIsDeterministic(t *testing.T) {
	type answer struct {
		class Class
		flaky [FlakyAttempts + 1]bool
	}
	pass := func(seed int64) []answer {
		out := make([]answer, 2000)
		for i := range out {
			id := fmt.Sprintf("id-%07d", i)
			out[i].class = ClassOf(seed, id)
			for a := range out[i].flaky {
				out[i].flaky[a] = Flaky(seed, id, a+1)
			}
		}
		return out
	}
	first := pass(7)
	other := pass(8)
	again := pass(7)
	differs := false
	for i := range first {
		if first[i] != again[i] {
			t.Fatalf("id-%07d: %+v on the first pass, %+v on the second", i, first[i], again[i])
		}
		if first[i].class != other[i].class {
			differs = true
		}
	}
	if !differs {
		t.Error("seeds 7 and 8 give every one of 2000 IDs the same class: the seed is not used")
	}
}

// TestFlakyEnds proves a normal ID always succeeds past FlakyAttempts, which is fewer attempts than the
// run's sidecars make (2 in place on each of 3 tiers), so no normal ID may end as a dead letter.
func TestFlakyEnds(t *testing.T) {
	flaky := 0
	for i := range 20000 {
		id := fmt.Sprintf("id-%07d", i)
		for a := 1; a <= FlakyAttempts; a++ {
			if Flaky(1, id, a) {
				flaky++
			}
		}
		for _, a := range []int{0, -1, FlakyAttempts + 1, FlakyAttempts + 10} {
			if Flaky(1, id, a) {
				t.Fatalf("Flaky(1, %q, %d) = true, want false outside 1..%d", id, a, FlakyAttempts)
			}
		}
	}
	if want := FlakyRate * 20000 * FlakyAttempts; math.Abs(float64(flaky)-want) > 5*math.Sqrt(want) {
		t.Errorf("%d flaky attempts, want about %.0f", flaky, want)
	}
}

// findID returns an ID of the wanted class under seed, and for Normal one whose first attempt is flaky
// when flaky is set.
func findID(t *testing.T, seed int64, want Class, flaky bool) string {
	t.Helper()
	for i := range 1_000_000 {
		id := fmt.Sprintf("id-%07d", i)
		if ClassOf(seed, id) == want && (!flaky || Flaky(seed, id, 1)) {
			return id
		}
	}
	t.Fatalf("no %v ID (flaky %v) among the first million", want, flaky)
	return ""
}

// TestAppAnswers proves the app answers each class as the run expects and counts only 2xx as delivered.
func TestAppAnswers(t *testing.T) {
	const seed = 11
	a := &App{seed: seed, ok: map[string]int{}, waiting: make(chan struct{})}
	normal := findID(t, seed, Normal, false)
	flaky := findID(t, seed, Normal, true)
	tests := []struct {
		name    string
		id      string
		attempt int
		want    int
	}{
		{"poison gets 400", findID(t, seed, Poison, false), 1, http.StatusBadRequest},
		{"poison gets 400 late too", findID(t, seed, Poison, false), 9, http.StatusBadRequest},
		{"doomed gets 500", findID(t, seed, Doomed, false), 1, http.StatusInternalServerError},
		{"doomed gets 500 on every tier", findID(t, seed, Doomed, false), 6, http.StatusInternalServerError},
		{"flaky first attempt gets 500", flaky, 1, http.StatusInternalServerError},
		{"flaky succeeds past the flaky attempts", flaky, FlakyAttempts + 1, http.StatusOK},
		{"normal", normal, 1, http.StatusOK},
		{"missing ID is accepted and counted", "", 1, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/", nil)
			if tt.id != "" {
				req.Header.Set("Idempotency-Key", tt.id)
			}
			req.Header.Set("Kafka-Attempt", strconv.Itoa(tt.attempt))
			rec := httptest.NewRecorder()
			a.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Errorf("status %d, want %d", rec.Code, tt.want)
			}
		})
	}
	got := a.Delivered()
	if got[normal] != 1 || got[flaky] != 1 || len(got) != 2 {
		t.Errorf("delivered = %v, want exactly %s and %s once each", got, normal, flaky)
	}
	st := a.Stats()
	if st.Requests != len(tests) || st.NoID != 1 || st.OK != 2 || st.Status4xx != 2 || st.Status5xx != 3 {
		t.Errorf("stats = %+v, want %d requests, 1 without ID, 2 OK, 2 4xx, 3 5xx", st, len(tests))
	}
}

// BenchmarkClassOf measures the per-request classification, which the app runs on every delivery.
func BenchmarkClassOf(b *testing.B) {
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("id-%07d", i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = ClassOf(1, ids[i%len(ids)])
	}
}
