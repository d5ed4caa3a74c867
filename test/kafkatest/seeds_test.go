package kafkatest

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode"
)

func TestSeeds(t *testing.T) {
	tests := []struct {
		name   string
		set    bool
		value  string
		want   string
		wantOK bool
	}{
		{name: "unset", set: false, want: "", wantOK: false},
		{name: "empty", set: true, value: "", want: "", wantOK: false},
		{name: "blanks only", set: true, value: " \t ", want: "", wantOK: false},
		{name: "one seed", set: true, value: "127.0.0.1:19092", want: "127.0.0.1:19092", wantOK: true},
		{name: "trimmed", set: true, value: "  " + DefaultSeeds + "\n", want: DefaultSeeds, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvBrokers, tt.value) // restores the caller's value afterwards, also for "unset"
			if !tt.set {
				if err := os.Unsetenv(EnvBrokers); err != nil {
					t.Fatalf("unsetting %s: %v", EnvBrokers, err)
				}
			}
			got, ok := Seeds()
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Seeds() = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestSplitSeeds(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{in: "", want: nil},
		{in: " , ,", want: nil},
		{in: "a:1", want: []string{"a:1"}},
		{in: DefaultSeeds, want: []string{"127.0.0.1:19092", "127.0.0.1:19093", "127.0.0.1:19094"}},
		{in: " a:1 ,b:2,, c:3 ,", want: []string{"a:1", "b:2", "c:3"}},
		{in: "[::1]:9092,localhost:9093", want: []string{"[::1]:9092", "localhost:9093"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			if got := SplitSeeds(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("SplitSeeds(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzSplitSeeds checks that no input yields an empty or untrimmed seed or one holding a comma, that no
// non-blank text is dropped, and that splitting is a fixed point: joining the seeds and splitting again
// gives the same seeds.
func FuzzSplitSeeds(f *testing.F) {
	for _, s := range []string{"", ",", DefaultSeeds, " a:1 ,b:2,, c:3 ,", "[::1]:9092", "\t\n,x\u00a0,\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := SplitSeeds(in)
		for _, s := range got {
			if s == "" || s != strings.TrimSpace(s) || strings.Contains(s, ",") {
				t.Fatalf("SplitSeeds(%q) has bad seed %q in %q", in, s, got)
			}
		}
		if n := strings.Count(in, ",") + 1; len(got) > n {
			t.Fatalf("SplitSeeds(%q) gave %d seeds from %d fields", in, len(got), n)
		}
		if want, have := nonBlank(strings.Split(in, ",")), nonBlank(got); have != want {
			t.Fatalf("SplitSeeds(%q) = %q keeps text %q, want %q", in, got, have, want)
		}
		if again := SplitSeeds(strings.Join(got, ",")); !slices.Equal(again, got) {
			t.Fatalf("SplitSeeds is not a fixed point for %q: %q, then %q", in, got, again)
		}
	})
}

func ExampleSplitSeeds() {
	fmt.Printf("%q\n", SplitSeeds(" 127.0.0.1:19092, 127.0.0.1:19093,"))
	// Output: ["127.0.0.1:19092" "127.0.0.1:19093"]
}

// nonBlank drops white space and commas from each part, what SplitSeeds may remove and all it may
// remove, and joins what is left. Parts are mapped one by one because joining invalid UTF-8 first could
// make a valid rune out of bytes from two parts.
func nonBlank(parts []string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(strings.Map(func(r rune) rune {
			if r == ',' || unicode.IsSpace(r) {
				return -1
			}
			return r
		}, p))
	}
	return b.String()
}
