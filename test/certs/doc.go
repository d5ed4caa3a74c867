// Package certs makes throw-away TLS material for tests: a certificate authority, a server certificate valid for
// 127.0.0.1, ::1 and localhost, and a client certificate for mutual TLS, all signed by that CA.
//
// Everything is generated in process (ECDSA P-256) and written as PEM files into the test's temporary directory,
// so servers that read certificates from files (redis-server, a Kafka broker) and Go clients that take a
// *tls.Config can share the same trust chain. Nothing here is meant for production use: keys are not protected
// and certificates live for one day.
package certs
