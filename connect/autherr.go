package connect

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
)

// ErrClosedDuringAuth is matched (with errors.Is) by the error a Kafka client built from KafkaOpts reports when
// a broker closes the connection in the middle of the SASL exchange. Brokers do that when they reject the
// credentials without an error code (and kgo would otherwise retry the resulting EOF forever).
var ErrClosedDuringAuth = errors.New("broker closed the connection during SASL authentication")

// closedDuringAuthError is what an authWatchConn returns instead of the EOF. It deliberately does not unwrap to
// io.EOF: kgo retries EOFs, and retrying rejected credentials never ends.
type closedDuringAuthError struct {
	addr  string
	cause string
}

func (e *closedDuringAuthError) Error() string {
	return "broker " + e.addr + " closed the connection during SASL authentication (" + e.cause +
		"): the credentials or the mechanism were likely rejected"
}

func (e *closedDuringAuthError) Is(target error) bool { return target == ErrClosedDuringAuth }

// IsAuthError reports whether err means the broker rejected the client's authentication: a SASL error code
// (SaslAuthenticationFailed, IllegalSaslState, UnsupportedSaslMechanism) or a broker closing the connection
// during the SASL exchange (ErrClosedDuringAuth). Retrying such an error cannot succeed, so the caller should
// stop with "authentication failed". Authorization errors (ACLs) are not authentication errors and report false.
//
// These errors reach the caller from requests it issues itself (Client.Ping, kadm calls, Client.Request):
// franz-go does not retry them. The producer and the consumer, though, load metadata in the background and keep
// records buffered through any load error (an idempotent record is never failed for one), so a client that only
// produces or polls never sees the rejection. Call Client.Ping once the client is built and classify its error.
func IsAuthError(err error) bool {
	if err == nil {
		return false
	}
	return errors.Is(err, kerr.SaslAuthenticationFailed) ||
		errors.Is(err, kerr.IllegalSaslState) ||
		errors.Is(err, kerr.UnsupportedSaslMechanism) ||
		errors.Is(err, ErrClosedDuringAuth)
}

// Kafka API keys of the SASL exchange.
const (
	keySASLHandshake    = 17
	keySASLAuthenticate = 36
)

// authWatchConn tracks whether the last request written on a broker connection belongs to the SASL exchange,
// and turns a peer close seen in that phase into a closedDuringAuthError.
//
// kgo writes every request frame (4-byte size, 2-byte API key, ...) with one Write call and reads responses in
// order, so the API key of the latest write tells the phase. The raw SASL framing of handshake v0 (Kafka before
// 1.0) carries no API key; there a close is reported as the plain EOF, as without this wrapper.
//
// Read and Write may be called from different goroutines, hence the atomic.
type authWatchConn struct {
	net.Conn
	addr   string
	inAuth atomic.Bool
}

// Write records the phase from the frame's API key, then writes the frame unchanged.
func (c *authWatchConn) Write(p []byte) (int, error) {
	if len(p) >= 6 {
		key := int16(binary.BigEndian.Uint16(p[4:6]))
		c.inAuth.Store(key == keySASLHandshake || key == keySASLAuthenticate)
	}
	return c.Conn.Write(p)
}

// Read passes data through; a close by the broker while authenticating becomes a closedDuringAuthError.
func (c *authWatchConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && c.inAuth.Load() {
		if cause := peerClosed(err); cause != "" {
			return n, &closedDuringAuthError{addr: c.addr, cause: cause}
		}
	}
	return n, err
}

// peerClosed names how the peer ended the connection, or returns "" for errors that are not a close by the
// peer (timeouts, our own Close), which must keep their usual meaning.
func peerClosed(err error) string {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	}
	return ""
}
