package connect

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/kafka-sidecar/kafka-sidecar/config"
)

func TestRedactURL(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "no credentials", in: "redis://cache:6379/0", want: "redis://cache:6379/0"},
		{name: "user and password", in: "redis://app:hunter2@cache:6379/0", want: "redis://app:xxxxx@cache:6379/0"},
		{name: "password only", in: "rediss://:hunter2@cache:6379", want: "rediss://:xxxxx@cache:6379"},
		{name: "user only is kept", in: "redis://app@cache:6379", want: "redis://app@cache:6379"},
		{name: "escaped password", in: "redis://app:p%40ss%2Fw@cache", want: "redis://app:xxxxx@cache"},
		{name: "credential query values", in: "redis://cache?password=hunter2&db=1&sentinel_password=s3", want: "redis://cache?password=xxxxx&db=1&sentinel_password=xxxxx"},
		{name: "token query value", in: "redis://cache?db=1&authToken=abc", want: "redis://cache?db=1&authToken=xxxxx"},
		{name: "fragment dropped", in: "redis://cache#hunter2", want: "redis://cache"},
		{name: "sentinel host list", in: "redis-sentinel://app:hunter2@s1:26379,s2:26379/mymaster?db=2", want: "redis-sentinel://app:xxxxx@s1:26379,s2:26379/mymaster?db=2"},
		{name: "host list net/url rejects", in: "redis-cluster://app:hunter2@n1:7000,n2", want: "redis-cluster://app:xxxxx@n1:7000,n2"},
		{name: "bad escape in the password", in: "redis://app:hun%zzter2@cache/0", want: "redis://app:xxxxx@cache/0"},
		{name: "unparseable without a colon hides the user info", in: "redis://hunter2@n1:7000,n2", want: "redis://:xxxxx@n1:7000,n2"},
		{name: "at sign in the password", in: "redis://app:hun@ter2@cache", want: "redis://app:xxxxx@cache"},
		{name: "no scheme", in: "app:hunter2@cache:6379", want: "app:xxxxx@cache:6379"},
		{name: "empty", in: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RedactURL(tt.in)
			if got != tt.want {
				t.Fatalf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if strings.Contains(got, "hunter2") || strings.Contains(got, "hun%zzter2") {
				t.Fatalf("RedactURL(%q) = %q still holds the password", tt.in, got)
			}
		})
	}
}

func TestScrub(t *testing.T) {
	cfg := &config.Config{
		KafkaSASLPassword: config.Secret(plantedPassword),
		RedisURL:          config.Secret("redis://:" + url.PathEscape("redis-pass-123") + "@cache"),
	}
	tests := []struct {
		name  string
		err   error
		clean bool // the message had no secret, so the same error comes back
	}{
		{name: "kafka password", err: fmt.Errorf("connecting with %s failed", plantedPassword)},
		{name: "query-escaped kafka password", err: fmt.Errorf("url ?p=%s", url.QueryEscape(plantedPassword))},
		{name: "redis password", err: errors.New(`parse "redis://:redis-pass-123@cache": bad`)},
		{name: "extra secret", err: errors.New("file held extra-secret-9")},
		{name: "nothing secret", err: errors.New("dial tcp: refused"), clean: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := scrub(tt.err, cfg, "extra-secret-9")
			for _, s := range []string{plantedPassword, url.QueryEscape(plantedPassword), "redis-pass-123", "extra-secret-9"} {
				if strings.Contains(got.Error(), s) {
					t.Fatalf("scrubbed message %q still holds %q", got, s)
				}
			}
			var replaced *scrubbedError
			if tt.clean && errors.As(got, &replaced) {
				t.Fatalf("a clean error was replaced: %v", got)
			}
			if !errors.Is(got, tt.err) {
				t.Fatal("the scrubbed error no longer unwraps to the original")
			}
		})
	}
	if scrub(nil, cfg) != nil {
		t.Fatal("scrub(nil) is not nil")
	}
}

// FuzzRedactURL checks, for any password put in the user info of a URL, that RedactURL never returns it in any
// of its encodings, and never panics.
func FuzzRedactURL(f *testing.F) {
	for _, seed := range []struct{ scheme, user, pass, hosts, tail string }{
		{"redis", "app", "hunter2", "cache:6379", "/0"},
		{"rediss", "", "p@ss:w/rd", "cache", "?db=1"},
		{"redis-sentinel", "u", "secret%zz", "s1:26379,s2:26379", "/mymaster?db=2"},
		{"redis-cluster", "u", "pass word", "[::1]:7000,[::1]:7001", ""},
		{"redis", "a:b", "c@d", "h", "#frag"},
	} {
		f.Add(seed.scheme, seed.user, seed.pass, seed.hosts, seed.tail)
	}
	f.Fuzz(func(t *testing.T, scheme, user, pass, hosts, tail string) {
		if !validScheme(scheme) {
			// Without a scheme the text is not a URL with user info, so it has no password to hide.
			return
		}
		raw := scheme + "://" + url.UserPassword(user, pass).String() + "@" + hosts + tail
		got := RedactURL(raw)
		// Only a password that is distinctive can be looked for: a short one may occur anywhere by chance.
		if len(pass) < 6 {
			return
		}
		rest := scheme + "://" + url.UserPassword(user, "").String() + "@" + hosts + tail
		for _, form := range []string{pass, url.PathEscape(pass), url.QueryEscape(pass), url.UserPassword("", pass).String()[1:]} {
			if strings.Contains(got, form) && !strings.Contains(rest+RedactURL(rest), form) && !strings.Contains(redactedMark, form) {
				t.Fatalf("RedactURL(%q) = %q holds the password as %q", raw, got, form)
			}
		}
	})
}

// FuzzParseHAURL checks the Sentinel/Cluster parser: no panic; every host it returns is host:port with a port in
// 1..65535; and its errors never hold the password.
func FuzzParseHAURL(f *testing.F) {
	for _, seed := range []string{
		"redis-sentinel://app:hunter2@s1:26379,s2:26380,s3/mymaster?db=2",
		"redis-cluster://n1:7000,[::1]:7001",
		"redis-cluster://:p%zz@n1",
		"redis-sentinel://s1:99999/m",
		"redis-sentinel://,/m",
		"redis-cluster://u:p@@h#x",
		"redis-cluster://",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		h, err := parseHAURL(raw, defaultRedisPort)
		if err != nil {
			if p := urlPassword(raw); len(p) >= 6 && strings.Contains(err.Error(), p) && !strings.Contains(strings.Replace(raw, p, "", 1), p) {
				t.Fatalf("error %q holds the password %q", err, p)
			}
			return
		}
		if len(h.hosts) == 0 {
			t.Fatalf("parsed %q with no hosts and no error", raw)
		}
		for _, addr := range h.hosts {
			host, port, err := net.SplitHostPort(addr)
			if err != nil || host == "" {
				t.Fatalf("host %q of %q is not host:port", addr, raw)
			}
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				t.Fatalf("host %q of %q has port %q", addr, raw, port)
			}
		}
	})
}

// validScheme reports whether s is a URL scheme by RFC 3986: a letter, then letters, digits, '+', '-' or '.'.
func validScheme(s string) bool {
	for i, r := range s {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !letter && (i == 0 || !(r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.')) {
			return false
		}
	}
	return s != ""
}
