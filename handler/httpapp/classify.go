package httpapp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
)

// MaxRetryAfter caps the app's Retry-After: a misbehaving app must not park delivery for hours.
const MaxRetryAfter = 5 * time.Minute

// maxReasonBody is how many bytes of an answer's body a Reason quotes.
const maxReasonBody = 256

// ClassifyStatus maps an HTTP status code of the app's answer to an Outcome, following the contract:
//
//	2xx, 409                                  Success
//	400, 410, 413, 415, 422, other 4xx        Permanent
//	408, 500, 502, 504, other 5xx             Retryable
//	429, 503, 401, 403, 404, 405              AppUnavailable
//
// Redirects are not followed (a POST must not silently turn into a GET elsewhere), so a 3xx means the URL is
// wrong: AppUnavailable, like 404. Codes outside 200–599 are unexpected and count as Retryable.
func ClassifyStatus(code int) handler.Outcome {
	switch {
	case code >= 200 && code < 300, code == http.StatusConflict:
		return handler.Success
	case code == http.StatusTooManyRequests, code == http.StatusServiceUnavailable,
		code == http.StatusUnauthorized, code == http.StatusForbidden,
		code == http.StatusNotFound, code == http.StatusMethodNotAllowed:
		return handler.AppUnavailable
	case code == http.StatusRequestTimeout:
		return handler.Retryable
	case code >= 300 && code < 400:
		return handler.AppUnavailable
	case code >= 400 && code < 500:
		return handler.Permanent
	}
	return handler.Retryable
}

// parseAction reads a Kafka-Sidecar-Action value. ok is false for an empty or unknown value, which is ignored
// so that a typo in the app never turns into a dead letter.
func parseAction(v string) (o handler.Outcome, ok bool) {
	v = strings.TrimSpace(v)
	switch {
	case strings.EqualFold(v, ActionDeadLetter):
		return handler.Permanent, true
	case strings.EqualFold(v, ActionRetry):
		return handler.Retryable, true
	}
	return 0, false
}

// ParseRetryAfter reads a Retry-After value, either delay-seconds or an HTTP date, relative to now. It returns
// zero for an empty, malformed or past value and never more than MaxRetryAfter.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			var numErr *strconv.NumError
			if errors.As(err, &numErr) && errors.Is(numErr.Err, strconv.ErrRange) {
				return MaxRetryAfter
			}
			// Not all digits: it may still be a date in an unusual format; http.ParseTime decides below.
		} else {
			if secs >= uint64(MaxRetryAfter/time.Second) {
				return MaxRetryAfter
			}
			return time.Duration(secs) * time.Second
		}
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	switch {
	case d <= 0:
		return 0
	case d > MaxRetryAfter:
		return MaxRetryAfter
	}
	return d
}

// statusReason builds "http <code>", then " (action <action>)" when the app overrode the class, then
// ": <snippet>" when detail has content. The snippet is log-safe: see appendSafe.
func statusReason(code int, action string, detail []byte) string {
	b := make([]byte, 0, 16+len(action)+min(len(detail), maxReasonBody)+8)
	b = append(b, "http "...)
	b = strconv.AppendInt(b, int64(code), 10)
	if action != "" {
		b = append(b, " (action "...)
		b = append(b, action...)
		b = append(b, ')')
	}
	if len(detail) > 0 {
		n := len(b)
		b = append(b, ": "...)
		b = appendSafe(b, detail, maxReasonBody)
		if len(b) == n+2 {
			b = b[:n]
		}
	}
	return string(b)
}

// appendSafe appends to b at most limit bytes, drawn from the first limit bytes of src, such that the result is
// valid UTF-8 on one line: control characters (C0, DEL, C1 and the Unicode line and paragraph separators)
// become spaces, invalid bytes become U+FFFD, a rune cut off by the limit is dropped, and surrounding
// whitespace is trimmed. Bodies quoted in reasons end up in logs and Kafka headers, where a newline or a
// broken byte sequence would do harm.
func appendSafe(b, src []byte, limit int) []byte {
	if len(src) >= limit {
		// src may have been cut here or by the caller's read buffer: drop a trailing rune that the cut
		// split, so it does not show up as U+FFFD.
		src = src[:limit]
		for i := len(src) - 1; i >= 0 && i >= len(src)-utf8.UTFMax; i-- {
			if utf8.RuneStart(src[i]) {
				if !utf8.FullRune(src[i:]) {
					src = src[:i]
				}
				break
			}
		}
	}
	start := len(b)
	for len(src) > 0 {
		r, size := utf8.DecodeRune(src)
		out := src[:size]
		switch {
		case r == utf8.RuneError && size == 1:
			out = []byte("\uFFFD")
		case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0, r == '\u2028', r == '\u2029':
			out = []byte(" ")
		}
		// Replacements can be longer than what they replace: the limit holds for the output too.
		if len(b)-start+len(out) > limit {
			break
		}
		b = append(b, out...)
		src = src[size:]
	}
	// Trim the whitespace that replaced leading and trailing control characters too.
	end := len(b)
	for end > start && b[end-1] == ' ' {
		end--
	}
	lead := start
	for lead < end && b[lead] == ' ' {
		lead++
	}
	if lead > start {
		copy(b[start:], b[lead:end])
		end -= lead - start
	}
	return b[:end]
}

// classifyError maps a failed round trip (no status) to an Outcome and a short, log-safe reason. Whether the
// error came from a timeout or the caller's cancellation is decided before this by looking at the contexts.
//
// The app being absent (refused, DNS failure, any failure to connect, TLS set up wrong) uses no attempt;
// a connection that broke once the request was under way (reset, EOF, broken pipe) is retryable.
func classifyError(err error) (handler.Outcome, string) {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return handler.AppUnavailable, "connection refused"
	case errors.As(err, &dnsErr):
		return handler.AppUnavailable, "dns lookup of " + safeString(dnsErr.Name) + " failed: " + safeString(dnsErr.Err)
	case errors.As(err, &opErr) && opErr.Op == "dial":
		if opErr.Timeout() {
			return handler.AppUnavailable, "connecting to the app: timeout"
		}
		return handler.AppUnavailable, "connecting to the app: " + safeString(innermost(opErr).Error())
	case isTLSSetupError(err):
		msg := innermost(err).Error()
		if errors.Is(err, io.EOF) {
			msg = "connection closed by the app during the handshake"
		}
		return handler.AppUnavailable, "tls: " + safeString(strings.TrimPrefix(msg, "tls: "))
	case errors.Is(err, syscall.ECONNRESET):
		return handler.Retryable, "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return handler.Retryable, "connection closed by the app (broken pipe)"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		// net.ErrClosed: the transport closed the connection after its read side saw the app hang up, and
		// the write of the body then failed. Cancellation, the other cause, is told apart before this.
		return handler.Retryable, "connection closed by the app during the request"
	}
	return handler.Retryable, safeString(innermost(err).Error())
}

// isTLSSetupError reports whether err says the TLS session could not be set up: a failed handshake (wrong CA,
// wrong name, a plain-HTTP server behind an https URL), or an alert from the app's side, which is how TLS 1.3
// rejects a client certificate after the handshake. These are configuration problems, not the record's fault.
func isTLSSetupError(err error) bool {
	var setupErr *tlsSetupError
	var opErr *net.OpError
	if errors.As(err, &setupErr) || (errors.As(err, &opErr) && opErr.Op == "remote error") {
		return true
	}
	var (
		recordErr   tls.RecordHeaderError
		verifyErr   *tls.CertificateVerificationError
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalidErr  x509.CertificateInvalidError
		alertErr    tls.AlertError
	)
	return errors.As(err, &recordErr) || errors.As(err, &verifyErr) || errors.As(err, &unknownAuth) ||
		errors.As(err, &hostErr) || errors.As(err, &invalidErr) || errors.As(err, &alertErr)
}

// innermost strips the wrappers that only add the method and URL (*url.Error) or the operation and addresses
// (*net.OpError), which make reasons long without telling more.
func innermost(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		// Stop at the first error whose message is its own, not a prefix plus the wrapped message.
		if !strings.HasSuffix(err.Error(), next.Error()) {
			return err
		}
		err = next
	}
}

// safeString makes s fit for a reason: one line of valid UTF-8, at most maxReasonBody bytes.
func safeString(s string) string {
	return string(appendSafe(make([]byte, 0, min(len(s), maxReasonBody)), []byte(s), maxReasonBody))
}
