// Package storetest is the contract test suite every dedup.Store implementation must pass.
//
// Run drives a store through claims, completions, releases, expiries, repeated and binary IDs, cancelled
// contexts and concurrent owners. Two owners are modelled as two stores built by the same factory with different
// owner names on the same backend. Stores must be built with the durations Lease and TTL.
//
// Expiry is checked in one of two ways. A store that implements Clock has its time moved forward exactly (a fake
// clock, miniredis's FastForward). Any other store runs in real time: the suite polls, within a bound, until the
// expected change shows, and checks it did not come early; a check that the machine was too slow to decide is
// skipped with that reason rather than failed.
package storetest
