package connect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

func TestIsAuthError(t *testing.T) {
	closed := &closedDuringAuthError{addr: "127.0.0.1:9092", cause: "EOF"}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "nil", err: nil, want: false},
		{name: "EOF alone", err: io.EOF, want: false},
		{name: "timeout", err: os.ErrDeadlineExceeded, want: false},
		{name: "authentication failed", err: kerr.SaslAuthenticationFailed, want: true},
		{name: "authentication failed with message", err: fmt.Errorf("%w: bad password", kerr.SaslAuthenticationFailed), want: true},
		{name: "illegal SASL state", err: kerr.IllegalSaslState, want: true},
		{name: "unsupported mechanism", err: kerr.UnsupportedSaslMechanism, want: true},
		{name: "broker closed during authentication", err: closed, want: true},
		{name: "wrapped close", err: fmt.Errorf("dialing: %w", closed), want: true},
		{name: "scrubbed close", err: &scrubbedError{msg: "x", err: closed}, want: true},
		{name: "kadm shard error", err: &kadm.ShardErrors{Errs: []kadm.ShardError{{Err: kerr.SaslAuthenticationFailed}}}, want: true},
		{name: "topic authorization is not authentication", err: kerr.TopicAuthorizationFailed, want: false},
		{name: "kadm cluster authorization", err: &kadm.AuthError{Err: kerr.ClusterAuthorizationFailed}, want: false},
		{name: "retriable broker error", err: kerr.NotLeaderForPartition, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsAuthError(tt.err); got != tt.want {
				t.Fatalf("IsAuthError(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// frame builds a request frame header as kgo writes it: size, API key, version, correlation ID.
func frame(key int16) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint32(b[0:4], 8)
	binary.BigEndian.PutUint16(b[4:6], uint16(key))
	binary.BigEndian.PutUint16(b[6:8], 1)
	binary.BigEndian.PutUint32(b[8:12], 7)
	return b
}

// scriptedConn is a net.Conn fake: writes are discarded, reads return readErr.
type scriptedConn struct {
	net.Conn
	readErr error
}

func (c *scriptedConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *scriptedConn) Read([]byte) (int, error)    { return 0, c.readErr }

func TestAuthWatchConn(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	tests := []struct {
		name     string
		lastKey  int16 // API key of the last frame written; -1 writes nothing
		readErr  error
		wantAuth bool
	}{
		{name: "EOF after SASL handshake", lastKey: keySASLHandshake, readErr: io.EOF, wantAuth: true},
		{name: "EOF after SASL authenticate", lastKey: keySASLAuthenticate, readErr: io.EOF, wantAuth: true},
		{name: "mid-frame EOF after SASL authenticate", lastKey: keySASLAuthenticate, readErr: io.ErrUnexpectedEOF, wantAuth: true},
		{name: "reset after SASL authenticate", lastKey: keySASLAuthenticate, readErr: reset, wantAuth: true},
		{name: "timeout after SASL authenticate", lastKey: keySASLAuthenticate, readErr: os.ErrDeadlineExceeded},
		{name: "closed by us after SASL authenticate", lastKey: keySASLAuthenticate, readErr: net.ErrClosed},
		{name: "EOF after metadata", lastKey: 3, readErr: io.EOF},
		{name: "EOF after API versions", lastKey: 18, readErr: io.EOF},
		{name: "EOF before any write", lastKey: -1, readErr: io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &authWatchConn{Conn: &scriptedConn{readErr: tt.readErr}, addr: "broker:9092"}
			if tt.lastKey >= 0 {
				// A SASL frame followed by the frame under test shows the phase follows the latest write.
				if _, err := c.Write(frame(keySASLHandshake)); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Write(frame(tt.lastKey)); err != nil {
					t.Fatal(err)
				}
			}
			_, err := c.Read(make([]byte, 16))
			if got := IsAuthError(err); got != tt.wantAuth {
				t.Fatalf("IsAuthError(%v) = %v, want %v", err, got, tt.wantAuth)
			}
			if tt.wantAuth {
				// kgo retries EOFs; an authentication close must not look like one, or it would retry forever.
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("%v unwraps to an EOF that kgo would retry", err)
				}
			} else if !errors.Is(err, tt.readErr) {
				t.Fatalf("read error %v, want the original %v", err, tt.readErr)
			}
		})
	}
}

func TestAuthWatchConnOverPipe(t *testing.T) {
	client, server := net.Pipe()
	c := &authWatchConn{Conn: client, addr: "pipe"}
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 12)
		_, err := io.ReadFull(server, buf)
		_ = server.Close() // the broker hangs up instead of answering
		done <- err
	}()
	if _, err := c.Write(frame(keySASLAuthenticate)); err != nil {
		t.Fatalf("writing: %v", err)
	}
	_, err := c.Read(make([]byte, 4))
	if !errors.Is(err, ErrClosedDuringAuth) {
		t.Fatalf("read error %v, want ErrClosedDuringAuth", err)
	}
	select {
	case serverErr := <-done:
		if serverErr != nil {
			t.Fatalf("server side: %v", serverErr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server side did not finish within 5s")
	}
	_ = client.Close()
}

// countingConn is a fast net.Conn fake for measuring the wrapper's own cost.
type countingConn struct {
	net.Conn
	n int
}

func (c *countingConn) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }
func (c *countingConn) Read(p []byte) (int, error)  { c.n += len(p); return len(p), nil }

// BenchmarkAuthWatchConn measures what the wrapper adds to every request and response of a broker connection.
func BenchmarkAuthWatchConn(b *testing.B) {
	req := append(frame(1), make([]byte, 512)...)
	buf := make([]byte, 4096)
	for _, wrapped := range []bool{false, true} {
		name := "raw"
		var conn net.Conn = &countingConn{}
		if wrapped {
			name = "wrapped"
			conn = &authWatchConn{Conn: conn, addr: "bench"}
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := conn.Write(req); err != nil {
					b.Fatal(err)
				}
				if _, err := conn.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
