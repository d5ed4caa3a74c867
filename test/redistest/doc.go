// Package redistest runs a real redis-server process for tests.
//
// Start finds the redis-server binary on PATH, starts it on a free 127.0.0.1 port with a private temporary
// directory and no persistence, waits until it answers PING, and registers a cleanup that kills the process it
// started (by PID) when the test ends. A test can stop the server and start it again on the same port to
// simulate an outage, require a password, or serve TLS (with certificates from package certs, optionally
// requiring client certificates).
//
// When redis-server is missing the test is skipped, unless the CI environment variable is set: then it fails and
// says to install the Debian package redis-server, so a CI machine without it cannot pass silently.
package redistest
