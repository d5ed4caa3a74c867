package connect

import (
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/kafka-sidecar/kafka-sidecar/config"
)

// redactedMark replaces a password; it is the mark net/url's URL.Redacted uses, so redacted URLs look alike
// wherever they are printed.
const redactedMark = "xxxxx"

// secretQueryRE matches query parameters whose value is a credential, whatever the URL form.
var secretQueryRE = regexp.MustCompile(`(?i)((?:^|[?&;])[^=&;#]*(?:pass|secret|token|auth)[^=&;#]*=)[^&;#]*`)

// RedactURL returns raw with the password of its user info and the values of credential-like query parameters
// (password, sentinel_password, token, ...) replaced by "xxxxx", keeping everything else so the URL can still
// be recognised in an error. It also handles strings net/url cannot parse (several hosts with IPv6 literals, a
// bad escape): then everything between "://" and the last "@" of the authority except the user name is
// replaced. It never returns the password of raw.
func RedactURL(raw string) string {
	var out string
	if u, err := url.Parse(raw); err == nil && u.Opaque == "" {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), redactedMark)
		}
		u.RawQuery = redactQuery(u.RawQuery)
		u.Fragment, u.RawFragment = "", ""
		out = u.String()
	} else {
		out = redactUnparsed(raw)
	}
	return out
}

// redactUnparsed redacts a URL-like string by its shape alone.
func redactUnparsed(raw string) string {
	rest, prefix := raw, ""
	if i := strings.Index(raw, "://"); i >= 0 {
		// Lower-case like net/url, so redacting a redacted URL changes nothing.
		prefix, rest = strings.ToLower(raw[:i+3]), raw[i+3:]
	}
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo, hosts := authority[:at], authority[at+1:]
		user, _, hasPass := strings.Cut(userinfo, ":")
		if !hasPass {
			// Without a colon there is no telling a user name from a bare password: hide it all.
			user = ""
		}
		authority = user + ":" + redactedMark + "@" + hosts
	}
	// A fragment is never needed to recognise a URL and, unparsed, could hide anything.
	if i := strings.IndexByte(tail, '#'); i >= 0 {
		tail = tail[:i]
	}
	if i := strings.IndexByte(tail, '?'); i >= 0 {
		tail = tail[:i] + "?" + redactQuery(tail[i+1:])
	}
	return prefix + authority + tail
}

// redactQuery replaces the values of credential-like parameters in a raw query, keeping their order.
func redactQuery(q string) string {
	if q == "" {
		return q
	}
	return secretQueryRE.ReplaceAllString(q, "${1}"+redactedMark)
}

// scrubbedError carries an error whose message had secrets removed. It unwraps to the original so errors.Is
// still classifies it; only the message is cleaned, which is what logs and users see.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// scrub removes every configured secret (and its URL-escaped forms) from err's message. Libraries sometimes
// quote their input, a URL with its password included, and this is the last line of defence against that.
func scrub(err error, cfg *config.Config, extra ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range secretsOf(cfg, extra...) {
		clean = strings.ReplaceAll(clean, s, redactedMark)
	}
	if clean == msg {
		return err
	}
	return &scrubbedError{msg: clean, err: err}
}

// secretsOf lists the secrets a configuration holds, longest first so a secret containing another is replaced
// whole, in plain and URL-escaped forms.
func secretsOf(cfg *config.Config, extra ...string) []string {
	var raw []string
	if cfg != nil {
		raw = append(raw, cfg.KafkaSASLPassword.Reveal(), cfg.SchemaRegistryPassword.Reveal())
		if u := cfg.RedisURL.Reveal(); u != "" {
			raw = append(raw, urlPassword(u))
		}
	}
	raw = append(raw, extra...)
	seen := map[string]bool{}
	var out []string
	for _, s := range raw {
		if s == "" {
			continue
		}
		for _, form := range []string{s, url.QueryEscape(s), url.PathEscape(s), url.UserPassword("", s).String()[1:]} {
			if form != "" && !seen[form] {
				seen[form] = true
				out = append(out, form)
			}
		}
	}
	// Longest first: replacing a short secret inside a longer one first would leave the rest of the longer one.
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// urlPassword extracts the password of a URL's user info, also from strings net/url cannot parse.
func urlPassword(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		p, _ := u.User.Password()
		return p
	}
	rest := raw
	if i := strings.Index(raw, "://"); i >= 0 {
		rest = raw[i+3:]
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	userinfo := rest[:at]
	if _, pass, ok := strings.Cut(userinfo, ":"); ok {
		if p, err := url.PathUnescape(pass); err == nil {
			return p
		}
		return pass
	}
	return userinfo
}

// RedactSecrets returns s with every secret the configuration holds (passwords, in plain and URL-escaped forms)
// replaced by "xxxxx". Unlike RedactURL it leaves text that is not a URL as it is, so it suits error messages.
func RedactSecrets(cfg *config.Config, s string) string {
	for _, sec := range secretsOf(cfg) {
		s = strings.ReplaceAll(s, sec, redactedMark)
	}
	return s
}
