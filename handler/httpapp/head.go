package httpapp

import "bytes"

// headState is how far parseHead got.
type headState int

const (
	// headShort means that the head does not end within the bytes given yet, and nothing unusual was seen.
	headShort headState = iota
	// headDone means that the head was parsed.
	headDone
	// headOther means that the head is not the common kind, which is left to net/http's ReadResponse.
	headOther
)

// commonHead is what parseHead takes from an answer's head. action and retryAfter point into the bytes
// parsed.
type commonHead struct {
	// size is the length of the head, up to and including its empty line.
	size          int
	status        int
	contentLength int64
	close         bool
	// action and retryAfter are the first Kafka-Sidecar-Action and Retry-After values, nil when absent.
	action, retryAfter []byte
}

// parseHead parses the head of the answers nearly every app gives, without allocating, so that an answer
// costs no more than the syscalls that carry it: an HTTP/1.1 status line with a status from 200 to 599, then
// header lines ending in CRLF, and the body's length either given by one Content-Length or none (204, 304).
// Anything else is headOther: 1xx, HTTP/1.0, Transfer-Encoding (chunked), a body that ends with the
// connection, repeated Content-Length, Connection values other than close and keep-alive, folded lines,
// bare LF, invalid names or values. http.ReadResponse then reads the answer as it always did, so parseHead
// never has to be right about a rare case, only about declining it; a fuzz test holds it to agree with
// ReadResponse on every head it accepts.
func parseHead(b []byte) (h commonHead, state headState) {
	line, state := nextLine(b)
	if state != headDone {
		return h, state
	}
	const proto = "HTTP/1.1 "
	if len(line) < len(proto)+3 || string(line[:len(proto)]) != proto {
		return h, headOther
	}
	code := line[len(proto):]
	for _, c := range code[:3] {
		if c < '0' || c > '9' {
			return h, headOther
		}
		h.status = h.status*10 + int(c-'0')
	}
	if h.status < 200 || h.status > 599 || (len(code) > 3 && code[3] != ' ') {
		return h, headOther
	}
	h.size = len(line) + 2
	h.contentLength = -1
	hasAction, hasRetryAfter := false, false
	for {
		line, state = nextLine(b[h.size:])
		if state != headDone {
			return h, state
		}
		h.size += len(line) + 2
		if len(line) == 0 {
			break
		}
		name, value, found := bytes.Cut(line, []byte(":"))
		value = bytes.Trim(value, " \t")
		if !found || !validHeaderName(name) || !validHeaderValue(value) {
			return h, headOther
		}
		switch {
		case equalFold(name, "Content-Length"):
			if h.contentLength >= 0 || len(value) == 0 || len(value) > 18 { // 18 digits cannot overflow
				return h, headOther
			}
			h.contentLength = 0
			for _, c := range value {
				if c < '0' || c > '9' {
					return h, headOther
				}
				h.contentLength = h.contentLength*10 + int64(c-'0')
			}
		case equalFold(name, "Transfer-Encoding"):
			return h, headOther
		case equalFold(name, "Connection"):
			switch {
			case equalFold(value, "close"):
				h.close = true
			case !equalFold(value, "keep-alive"):
				return h, headOther
			}
		case equalFold(name, HeaderAction) && !hasAction:
			h.action, hasAction = value, true
		case equalFold(name, HeaderRetryAfter) && !hasRetryAfter:
			h.retryAfter, hasRetryAfter = value, true
		}
	}
	switch {
	case h.status == 204 || h.status == 304:
		h.contentLength = 0 // these never have a body, whatever Content-Length says
	case h.contentLength < 0:
		return h, headOther
	}
	return h, headDone
}

// nextLine returns the line at the start of b without its CRLF.
func nextLine(b []byte) ([]byte, headState) {
	i := bytes.IndexByte(b, '\n')
	switch {
	case i < 0:
		return nil, headShort
	case i == 0 || b[i-1] != '\r':
		return nil, headOther
	}
	return b[:i-1], headDone
}

// equalFold reports whether b equals s, ignoring ASCII case (only: HTTP's names and tokens are ASCII).
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lowerASCII(b[i]) != lowerASCII(s[i]) {
			return false
		}
	}
	return true
}

// lowerASCII returns c in lower case when it is an ASCII letter.
func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
