package httpapp

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// tokenCheckInterval is how often the token file is looked at: rotation is rare, requests are many.
const tokenCheckInterval = time.Second

// tokenRecentWindow: a file changed this recently is re-read even when its stat looks unchanged, because file
// timestamps can be coarser than the time between two writes of a same-sized token.
const tokenRecentWindow = 2 * time.Second

// maxTokenBytes bounds the token file read, so a wrong path (a log file, a device) cannot eat memory.
const maxTokenBytes = 64 << 10

// tokenFile serves "Bearer <token>" from a file and notices when the file changes. Mounted Secrets rotate by
// swapping a symlink, which changes the inode behind the path; an in-place rewrite changes size or mtime.
// header is safe for concurrent use and costs an atomic load on all but one call per interval.
type tokenFile struct {
	path string
	now  func() time.Time

	// next is the clock reading (Unix ns) from which the file is checked again.
	next atomic.Int64
	// value is the current header value.
	value atomic.Pointer[string]

	mu   sync.Mutex // held by the one caller that checks the file
	info os.FileInfo
}

// newTokenFile reads the token once; a missing, empty or malformed file is a configuration error.
func newTokenFile(path string, now func() time.Time) (*tokenFile, error) {
	t := &tokenFile{path: path, now: now}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading auth token file: %w", err)
	}
	v, err := readToken(path)
	if err != nil {
		return nil, err
	}
	t.info = info
	t.value.Store(&v)
	t.next.Store(now().Add(tokenCheckInterval).UnixNano())
	return t, nil
}

// header returns the Authorization value. When a check is due, one caller stats the file while the others
// carry on with the current token instead of queueing behind file I/O.
func (t *tokenFile) header() string {
	now := t.now().UnixNano()
	if now >= t.next.Load() && t.mu.TryLock() {
		if now >= t.next.Load() {
			t.refresh()
			t.next.Store(now + int64(tokenCheckInterval))
		}
		t.mu.Unlock()
	}
	return *t.value.Load()
}

// refresh re-reads the token when the file changed. A failed stat or read keeps the current token: during a
// symlink swap the path can briefly be missing, and a stale token is better than none. The next check retries.
func (t *tokenFile) refresh() {
	info, err := os.Stat(t.path)
	if err != nil {
		return
	}
	changed := !os.SameFile(info, t.info) || info.Size() != t.info.Size() || !info.ModTime().Equal(t.info.ModTime())
	// The window uses wall time, not t.now: it compares with the file system's timestamps.
	recent := time.Since(info.ModTime()) < tokenRecentWindow
	if !changed && !recent {
		return
	}
	v, err := readToken(t.path)
	if err != nil {
		return
	}
	t.info = info
	if *t.value.Load() != v {
		t.value.Store(&v)
	}
}

// readToken reads and checks the token file and returns "Bearer <token>". Errors never quote the content.
func readToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading auth token file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading auth token file: %w", err)
	}
	if len(b) > maxTokenBytes {
		return "", fmt.Errorf("reading auth token file %s: larger than %d bytes", path, maxTokenBytes)
	}
	tok := strings.TrimSpace(string(b))
	switch {
	case tok == "":
		return "", fmt.Errorf("reading auth token file %s: %w", path, errEmptyToken)
	case !validHeaderValue(tok):
		return "", fmt.Errorf("reading auth token file %s: %w", path, errMalformedToken)
	}
	return "Bearer " + tok, nil
}

var (
	errEmptyToken     = errors.New("the file is empty")
	errMalformedToken = errors.New("the token holds characters that an HTTP header cannot carry")
)
