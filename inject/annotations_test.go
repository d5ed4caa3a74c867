package inject_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kafka-sidecar/kafka-sidecar/inject"
)

func TestParseAnnotationsIgnoresPodsThatDoNotAsk(t *testing.T) {
	for _, a := range []map[string]string{
		nil,
		{"other.io/inject": "true"},
		{inject.AnnotationInject: "false", inject.AnnotationTopics: "not read, so not checked"},
	} {
		s, err := inject.ParseAnnotations(a)
		if err != nil || s.Inject {
			t.Errorf("%v: inject=%v err=%v, want no injection and no error", a, s.Inject, err)
		}
	}
}

func TestParseAnnotationsNormalises(t *testing.T) {
	s, err := inject.ParseAnnotations(map[string]string{
		inject.AnnotationInject:  "true",
		inject.AnnotationTopics:  " orders , payments ",
		inject.AnnotationBrokers: "k-0:9092, [::1]:9093",
		inject.AnnotationAppPort: "8081",
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Topics != "orders,payments" || s.Brokers != "k-0:9092,[::1]:9093" || s.AppURL != "http://127.0.0.1:8081/" {
		t.Fatalf("%+v", s)
	}
}

// FuzzParseAnnotations: any value of any annotation either parses or gives *AnnotationError values that name
// a kafka-sidecar.io/ annotation; it never panics. What parses is stable: the normalised topics and brokers
// parse again to themselves.
func FuzzParseAnnotations(f *testing.F) {
	for _, seed := range [][2]string{
		{"topics", "orders,payments"}, {"topics", " a , b "}, {"topics", "a,,b"}, {"topics", ".."},
		{"brokers", "k:9092"}, {"brokers", "[::1]:9092,k:1"}, {"brokers", "k:0"}, {"brokers", ":9092"},
		{"group", "g"}, {"group", "a b"}, {"app-port", "8080"}, {"app-port", "08080"}, {"app-port", "-1"},
		{"app-url", "http://127.0.0.1:8080/{topic}"}, {"app-url", "http://\x00"}, {"config-map", "a.b-c"},
		{"secret", "UPPER"}, {"static-membership", "true"}, {"image", "r/i:1"}, {"cpu-request", "100m"},
		{"memory-limit", "1e3"}, {"memory-request", "-1"}, {"admin-port", "65536"}, {"inject", "yes"}, {"nope", "x"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		a := map[string]string{inject.AnnotationInject: "true", inject.Prefix + name: value}
		s, err := inject.ParseAnnotations(a)
		if err != nil {
			for _, e := range flatten(err) {
				var aerr *inject.AnnotationError
				if !errors.As(e, &aerr) || !strings.HasPrefix(aerr.Annotation, inject.Prefix) {
					t.Fatalf("error %v is not an *AnnotationError naming an annotation", e)
				}
				if !utf8.ValidString(e.Error()) && utf8.ValidString(value) && utf8.ValidString(name) {
					t.Fatalf("invalid UTF-8 in the message %q", e.Error())
				}
			}
			return
		}
		if name == "inject" && value != "true" {
			return
		}
		again, err := inject.ParseAnnotations(map[string]string{
			inject.AnnotationInject: "true", inject.AnnotationTopics: nonEmpty(s.Topics, "t"),
			inject.AnnotationBrokers: nonEmpty(s.Brokers, "k:1"),
		})
		if err != nil || again.Topics != nonEmpty(s.Topics, "t") || again.Brokers != nonEmpty(s.Brokers, "k:1") {
			t.Fatalf("normalised %+v does not parse to itself: %+v, %v", s, again, err)
		}
	})
}

func nonEmpty(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}
