package dedup

import (
	"strings"
	"testing"
)

func TestParseInfo(t *testing.T) {
	text := "# Memory\r\nused_memory:1024\r\nmaxmemory_policy:noeviction\r\n\r\n# Keyspace\r\ndb0:keys=1,expires=1,avg_ttl=0\r\nnot a field\r\n:no key\r\nurl:redis://h:1\r\n"
	got := parseInfo(text)
	want := map[string]string{"used_memory": "1024", "maxmemory_policy": "noeviction", "db0": "keys=1,expires=1,avg_ttl=0", "url": "redis://h:1"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// FuzzParseInfo checks the INFO parser never panics and returns only trimmed, non-empty keys without colons that
// occur in the input.
func FuzzParseInfo(f *testing.F) {
	for _, seed := range []string{
		"# Persistence\r\naof_enabled:1\r\nrdb_changes_since_last_save:0\r\n",
		"used_memory:100\nmaxmemory:0\n",
		"::\n#:\n a : b \n",
		"",
		strings.Repeat("k:v\n", 100),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		for k := range parseInfo(text) {
			if k == "" || strings.Contains(k, ":") || strings.HasPrefix(k, "#") || strings.TrimSpace(k) != k {
				t.Fatalf("bad key %q from %q", k, text)
			}
			if !strings.Contains(text, k) {
				t.Fatalf("key %q is not in the input %q", k, text)
			}
		}
	})
}
