package decode

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
)

const stringAvro = `{"type":"string"}`

func TestRegistryNotFoundIsCachedForAWhile(t *testing.T) {
	fake, _ := fakeRegistry(t)
	var asked atomic.Int32
	fake.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/schemas/ids/") {
			asked.Add(1)
		}
		return false
	})
	now := time.Unix(1000, 0)
	cl, _ := sr.NewClient(sr.URLs(fake.URL()))
	reg := NewRegistry(cl, RegistryOptions{NotFoundTTL: time.Minute, Now: func() time.Time { return now }})
	for range 3 {
		if _, err := reg.Schema(context.Background(), 42); !errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
	}
	if asked.Load() != 1 {
		t.Fatalf("the registry was asked %d times in the TTL, want 1", asked.Load())
	}
	fake.SeedSchema("late-value", 1, 42, sr.Schema{Schema: stringAvro})
	now = now.Add(2 * time.Minute)
	s, err := reg.Schema(context.Background(), 42)
	if err != nil || s.Subject("late", false) != "late-value" {
		t.Fatalf("after the TTL: got %v, %v; want the schema registered since", s, err)
	}
}

func TestRegistryOutagesAreUnavailableAndNotCached(t *testing.T) {
	tests := []struct {
		name   string
		answer func(w http.ResponseWriter)
	}{
		{"5xx", func(w http.ResponseWriter) {
			http.Error(w, `{"error_code":50001,"message":"store down"}`, http.StatusInternalServerError)
		}},
		{"rejected credentials", func(w http.ResponseWriter) { http.Error(w, `{"error_code":40101}`, http.StatusUnauthorized) }},
		{"404 from something that is not a registry", func(w http.ResponseWriter) { http.Error(w, "no such page", http.StatusNotFound) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, reg := fakeRegistry(t)
			fake.SeedSchema("t-value", 1, 5, sr.Schema{Schema: stringAvro})
			var failing atomic.Bool
			failing.Store(true)
			fake.Intercept(func(w http.ResponseWriter, _ *http.Request) bool {
				if failing.Load() {
					tt.answer(w)
					return true
				}
				return false
			})
			_, err := reg.Schema(context.Background(), 5)
			if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
				t.Fatalf("got %v, want ErrUnavailable", err)
			}
			if !strings.Contains(err.Error(), "schema id 5") {
				t.Fatalf("%v does not name the schema id", err)
			}
			failing.Store(false)
			if _, err := reg.Schema(context.Background(), 5); err != nil {
				t.Fatalf("after the outage: %v", err)
			}
		})
	}
}

func TestRegistryUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	cl, _ := sr.NewClient(sr.URLs(url))
	reg := NewRegistry(cl, RegistryOptions{})
	if _, err := reg.Schema(context.Background(), 1); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
}

func TestRegistryCacheIsBounded(t *testing.T) {
	fake, _ := fakeRegistry(t)
	for id := 1; id <= 5; id++ {
		fake.SeedSchema("s"+string(rune('0'+id)), 1, id, sr.Schema{Schema: stringAvro})
	}
	var asked atomic.Int32
	fake.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/schemas/ids/1" {
			asked.Add(1)
		}
		return false
	})
	cl, _ := sr.NewClient(sr.URLs(fake.URL()))
	reg := NewRegistry(cl, RegistryOptions{MaxSchemas: 3})
	for id := 1; id <= 5; id++ {
		if _, err := reg.Schema(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	if reg.Len() != 3 {
		t.Fatalf("%d schemas cached, want the bound 3", reg.Len())
	}
	if _, err := reg.Schema(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if asked.Load() != 2 {
		t.Fatalf("schema 1 fetched %d times, want 2 (evicted as least recently used)", asked.Load())
	}
}

func TestRegistrySharesConcurrentFetches(t *testing.T) {
	fake, _ := fakeRegistry(t)
	fake.SeedSchema("t-value", 1, 9, sr.Schema{Schema: stringAvro})
	var asked atomic.Int32
	release := make(chan struct{})
	fake.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/schemas/ids/9" {
			asked.Add(1)
			<-release
		}
		return false
	})
	cl, _ := sr.NewClient(sr.URLs(fake.URL()))
	reg := NewRegistry(cl, RegistryOptions{})
	errs := make(chan error, 8)
	for range 8 {
		go func() { _, err := reg.Schema(context.Background(), 9); errs <- err }()
	}
	deadline := time.After(10 * time.Second)
	for asked.Load() == 0 {
		select {
		case <-deadline:
			t.Fatal("no fetch reached the registry")
		case <-time.After(time.Millisecond):
		}
	}
	close(release)
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if asked.Load() != 1 {
		t.Fatalf("the registry was asked %d times, want 1", asked.Load())
	}
}
