package httpapp

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
)

func TestClassifyStatus(t *testing.T) {
	tests := []struct {
		codes []int
		want  handler.Outcome
	}{
		{codes: []int{200, 201, 202, 203, 204, 206, 226, 299, 409}, want: handler.Success},
		{codes: []int{400, 402, 406, 407, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 431, 451, 499}, want: handler.Permanent},
		{codes: []int{408, 500, 501, 502, 504, 505, 507, 508, 511, 599, 0, 100, 199, 600, 999}, want: handler.Retryable},
		{codes: []int{429, 503, 401, 403, 404, 405, 300, 301, 302, 303, 304, 307, 308, 399}, want: handler.AppUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.want.String(), func(t *testing.T) {
			for _, code := range tt.codes {
				if got := ClassifyStatus(code); got != tt.want {
					t.Errorf("ClassifyStatus(%d) = %v, want %v", code, got, tt.want)
				}
			}
		})
	}
}

func TestClassifyError(t *testing.T) {
	wrap := func(err error) error {
		return &url.Error{Op: "Post", URL: "http://user:pw@127.0.0.1:8080/in", Err: err}
	}
	dial := func(err error) error {
		return wrap(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)})
	}
	tests := []struct {
		name    string
		err     error
		outcome handler.Outcome
		reason  string
	}{
		{name: "refused", err: dial(syscall.ECONNREFUSED), outcome: handler.AppUnavailable, reason: "connection refused"},
		{name: "dns", err: wrap(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "app.invalid", IsNotFound: true}}),
			outcome: handler.AppUnavailable, reason: "dns lookup of app.invalid failed: no such host"},
		{name: "dial timeout", err: wrap(&net.OpError{Op: "dial", Err: timeoutErr{}}), outcome: handler.AppUnavailable, reason: "connecting to the app: timeout"},
		{name: "no route", err: dial(syscall.EHOSTUNREACH), outcome: handler.AppUnavailable, reason: "connecting to the app: " + syscall.EHOSTUNREACH.Error()},
		{name: "unknown CA", err: wrap(x509.UnknownAuthorityError{}), outcome: handler.AppUnavailable},
		{name: "wrong host name", err: wrap(x509.HostnameError{Certificate: &x509.Certificate{}, Host: "app"}), outcome: handler.AppUnavailable},
		{name: "handshake closed", err: &tlsSetupError{io.EOF}, outcome: handler.AppUnavailable, reason: "tls: connection closed by the app during the handshake"},
		{name: "handshake timeout", err: &tlsSetupError{errTLSHandshakeTimeout}, outcome: handler.AppUnavailable, reason: "tls: handshake timeout"},
		{name: "handshake alert", err: &tlsSetupError{&net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}},
			outcome: handler.AppUnavailable, reason: "tls: bad certificate"},
		{name: "alert after the handshake", err: &net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")},
			outcome: handler.AppUnavailable, reason: "tls: certificate required"},
		{name: "reset", err: wrap(&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), outcome: handler.Retryable, reason: "connection reset"},
		{name: "broken pipe", err: wrap(&net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.EPIPE)}), outcome: handler.Retryable, reason: "connection closed by the app (broken pipe)"},
		{name: "eof", err: wrap(io.EOF), outcome: handler.Retryable, reason: "connection closed by the app during the request"},
		{name: "unexpected eof", err: wrap(fmt.Errorf("reading: %w", io.ErrUnexpectedEOF)), outcome: handler.Retryable, reason: "connection closed by the app during the request"},
		{name: "malformed answer", err: wrap(errors.New("malformed HTTP response \"\\x00\\x01\"\n")), outcome: handler.Retryable, reason: `malformed HTTP response "\x00\x01"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, reason := classifyError(tt.err)
			if o != tt.outcome || (tt.reason != "" && reason != tt.reason) {
				t.Errorf("classifyError(%v) = %v %q, want %v %q", tt.err, o, reason, tt.outcome, tt.reason)
			}
			if strings.Contains(reason, "pw") || reason == "" || !utf8.ValidString(reason) || strings.ContainsAny(reason, "\r\n") {
				t.Errorf("reason %q is not short, clean and secret-free", reason)
			}
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{in: "", want: 0},
		{in: "0", want: 0},
		{in: "1", want: time.Second},
		{in: " 30 ", want: 30 * time.Second},
		{in: "299", want: 299 * time.Second},
		{in: "300", want: MaxRetryAfter},
		{in: "99999999999999999999999", want: MaxRetryAfter},
		{in: "-5", want: 0},
		{in: "1.5", want: 0},
		{in: "12abc", want: 0},
		{in: "Wed, 01 May 2024 12:01:00 GMT", want: time.Minute},
		{in: "Wednesday, 01-May-24 12:00:10 GMT", want: 10 * time.Second},
		{in: "Wed May  1 12:00:20 2024", want: 20 * time.Second},
		{in: "Wed, 01 May 2024 11:00:00 GMT", want: 0},
		{in: "Thu, 02 May 2024 12:00:00 GMT", want: MaxRetryAfter},
		{in: "tomorrow", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := ParseRetryAfter(tt.in, now); got != tt.want {
				t.Errorf("ParseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestAppendSafe(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		limit int
		want  string
	}{
		{name: "plain", in: "boom", limit: 256, want: "boom"},
		{name: "empty", in: "", limit: 256, want: ""},
		{name: "controls become spaces and ends are trimmed", in: "\n a\tb\r\nc\x00\x1b[31m \x7f", limit: 256, want: "a b  c  [31m"},
		{name: "invalid utf-8 is replaced", in: "a\xffb\xc3", limit: 256, want: "a\ufffdb\ufffd"},
		{name: "c1 and line separators", in: "a\u0085b\u2028c\u2029d", limit: 256, want: "a b c d"},
		{name: "cut at the limit", in: "abcdef", limit: 3, want: "abc"},
		{name: "rune split by the cut is dropped", in: "ab€", limit: 4, want: "ab"},
		{name: "rune ending at the cut is kept", in: "ab€x", limit: 5, want: "ab€"},
		{name: "only controls", in: "\r\n\t", limit: 256, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("p:")
			got := appendSafe(prefix, []byte(tt.in), tt.limit)
			if string(got) != "p:"+tt.want {
				t.Errorf("appendSafe(%q, %d) = %q, want %q", tt.in, tt.limit, got[2:], tt.want)
			}
		})
	}
}

func TestStatusReason(t *testing.T) {
	tests := []struct {
		code   int
		action string
		detail string
		want   string
	}{
		{code: 500, want: "http 500"},
		{code: 500, detail: "boom", want: "http 500: boom"},
		{code: 500, detail: " \n ", want: "http 500"},
		{code: 200, action: "dead-letter", want: "http 200 (action dead-letter)"},
		{code: 422, action: "retry", detail: "later", want: "http 422 (action retry): later"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := statusReason(tt.code, tt.action, []byte(tt.detail)); got != tt.want {
				t.Errorf("statusReason = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[handler.Outcome]string{
		handler.Success: "success", handler.Retryable: "retryable", handler.Permanent: "permanent", handler.AppUnavailable: "app_unavailable", 99: "unknown",
	} {
		if got := o.String(); got != want {
			t.Errorf("Outcome(%d).String() = %q, want %q", o, got, want)
		}
	}
}
