package dedup

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrAuth wraps every error caused by the store refusing this client's credentials (a wrong password or user,
// no password where one is required, an ACL that forbids the commands) or by a failed TLS authentication in
// either direction (an untrusted server certificate, a client certificate the server refuses). Retrying does not
// help: callers stop and report that authentication failed.
var ErrAuth = errors.New("dedup store authentication failed")

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("dedup store closed")

// errClass sorts errors by what a caller should do about them.
type errClass uint8

const (
	// classOther is a bug or a misconfiguration that retrying will not fix (a key of the wrong type, say).
	classOther errClass = iota
	// classUnavailable is an outage: wait and try again.
	classUnavailable
	// classAuth is a rejected identity: stop.
	classAuth
)

// wrapErr turns an error from a store operation into one that names the action and matches the sentinel a
// caller acts on. Once the caller's context has ended, the context's error is reported and nothing else, so a
// shutdown is not mistaken for an outage.
func wrapErr(ctx context.Context, action string, err error) error {
	if err == nil {
		return nil
	}
	ctxErr := ctx.Err()
	if dl, ok := ctx.Deadline(); ctxErr == nil && ok && !time.Now().Before(dl) {
		// A socket deadline taken from ctx can fire a moment before ctx's own timer marks it done.
		ctxErr = context.DeadlineExceeded
	}
	if ctxErr != nil {
		// Whatever the client saw (a cancelled read, a socket deadline taken from ctx), the cause is the caller's.
		return fmt.Errorf("%s: %w", action, ctxErr)
	}
	if errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("%s: %w: %w", action, ErrClosed, err)
	}
	switch classify(err) {
	case classAuth:
		return fmt.Errorf("%s: %w: %w", action, ErrAuth, err)
	case classUnavailable:
		return fmt.Errorf("%s: %w: %w", action, ErrUnavailable, err)
	default:
		return fmt.Errorf("%s: %w", action, err)
	}
}

// unavailablePrefixes are the Redis error codes of a server that is up but cannot serve right now: loading its
// data set, failing over, out of memory under a noeviction policy, unable to persist, or busy in a script.
var unavailablePrefixes = []string{
	"LOADING", "BUSY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "READONLY", "OOM", "MISCONF", "NOREPLICAS",
}

// classify decides what an error from go-redis means. Redis reply errors are judged by their code; anything that
// is not a reply from the server (refused or reset connections, timeouts, EOF, an exhausted pool) is an outage.
func classify(err error) errClass {
	if isAuthError(err) {
		return classAuth
	}
	if errors.Is(err, redis.ErrClosed) || errors.Is(err, ErrClosed) {
		return classOther
	}
	var recordErr tls.RecordHeaderError
	if errors.As(err, &recordErr) {
		// TLS spoken to a plain-text port: a configuration error that will not heal by waiting.
		return classOther
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		if redis.IsMaxClientsError(err) {
			return classUnavailable
		}
		msg := strings.TrimPrefix(rerr.Error(), "ERR ")
		for _, p := range unavailablePrefixes {
			if strings.HasPrefix(msg, p+" ") || msg == p {
				return classUnavailable
			}
		}
		return classOther
	}
	return classUnavailable
}

// IsAuthError reports whether err means the store refused this client's credentials or TLS identity: an error
// the store already wrapped as ErrAuth, or one straight from go-redis (a Ping on the client, say).
func IsAuthError(err error) bool {
	return err != nil && (errors.Is(err, ErrAuth) || isAuthError(err))
}

// isAuthError recognises rejected credentials and failed TLS authentication.
func isAuthError(err error) bool {
	if redis.IsAuthError(err) || redis.IsPermissionError(err) {
		return true
	}
	var verifyErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidErr x509.CertificateInvalidError
	if errors.As(err, &verifyErr) || errors.As(err, &unknownCA) || errors.As(err, &hostErr) ||
		errors.As(err, &invalidErr) {
		return true
	}
	// A server that refuses our certificate answers the handshake with a TLS alert, which crypto/tls reports as
	// an *net.OpError with Op "remote error" around an unexported alert type; only its text names the alert.
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "remote error" && opErr.Err != nil {
		msg := opErr.Err.Error()
		for _, alert := range certificateAlerts {
			if strings.Contains(msg, alert) {
				return true
			}
		}
	}
	return false
}

// certificateAlerts are the texts crypto/tls gives the TLS alerts a server sends when it rejects a client's
// certificate (or the lack of one).
var certificateAlerts = []string{
	"bad certificate", "unsupported certificate", "revoked certificate", "expired certificate",
	"unknown certificate", "unknown certificate authority", "access denied", "certificate required",
}
