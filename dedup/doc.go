// Package dedup remembers, per message ID, that a sidecar is delivering a message (a lease) or has finished it
// (a done mark), so a message the app has accepted is not handed to it again and no two sidecars deliver the
// same message at once.
//
// A Store works on batches of IDs. Three implementations are provided:
//
//   - Redis (NewRedis): the shared store for a group of sidecars, on a standalone, Sentinel or Cluster
//     deployment. Each ID is one key, KeyPrefix+id, holding "L"+owner while leased and "D" once done; every
//     batch is one script call (Apply does done marks, releases and claims together), one round trip.
//   - Memory (NewMemory): the same semantics inside one process, for a single replica and for tests.
//   - Off: no duplicate suppression at all; every Claim succeeds.
//
// A Coalescer sits in front of a Store on the hot path: it takes calls for one ID or a few from many
// goroutines, of all three kinds, and groups the concurrent ones into one Apply, so throughput scales with
// concurrency without delaying a lone call.
//
// Errors: a store that cannot be reached returns errors matching ErrUnavailable (pause and try again; never a
// reason to drop or skip a record); rejected credentials or certificates match ErrAuth (stop: retrying does not
// help); a caller's cancelled context is returned as the context's error. Package storetest holds the contract
// test suite every Store must pass.
package dedup
