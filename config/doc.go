// Package config reads the sidecar's configuration from SIDECAR_* environment variables.
//
// The Config struct is the single source of truth: its tags carry each variable's name, default and help
// line, so `kafka-sidecar --help` and the README table are generated from it. LoadFrom parses, then
// validates, and reports every bad or missing variable in one *Error so a user fixes them all at once.
package config
