// Package image checks the repository's container image definition without a container engine: it parses
// the Dockerfile (multi-stage, a distroless static non-root base, a numeric non-root USER, OCI labels) and
// builds the binary with the very go build line the Dockerfile runs, then inspects the result (static,
// stripped, trimmed, version stamped).
//
// The Dockerfile parser covers what this check needs: instructions, line continuations, comments, instruction
// flags, stages, exec-form arguments and shell-style words. It does not handle heredocs or a changed escape
// character, and reports them as errors rather than misreading them.
package image
