package dedup_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kafka-sidecar/kafka-sidecar/dedup"
)

// TestRedisReadsPreviousReleaseMarks is an in-place upgrade: the previous release left one key per message ID
// (KeyPrefix+id: "D" once done, "L"+owner while leased). This release's store finds them, reads them for the
// TTL, and so suppresses every redelivery they cover: marks are done, other owners' leases busy.
func TestRedisReadsPreviousReleaseMarks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ctx context.Context, client redis.UniversalClient) {
		const prefix = "kafka-sidecar:orders-consumer:"
		for key, value := range map[string]string{
			"orders/0/5": "D",           // a record without an ID of its own, done
			"msg-1":      "D",           // a message with an ID header, done
			"orders/0/6": "Lold-pod-1",  // in flight on a member of the previous release
			"msg-2":      "Lold-pod-1",  // likewise
			"orders/0/8": "Lpod-0",      // this member's own lease from before its restart
			"i:q":        "D",           // an old mark for message "i:q": not message "q"'s mark
			"p:format-x": "not-a-mark!", // an unrelated old key
		} {
			set(t, client, prefix+key, value)
		}
		const ttl = 168 * time.Hour
		start := time.Now()
		s := dedup.NewRedis(client, dedup.RedisOptions{KeyPrefix: prefix, Owner: "pod-0", TTL: ttl})
		defer s.Close()
		until, err := s.LegacyUntil(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if until.Before(start.Add(ttl-time.Millisecond)) || until.After(time.Now().Add(ttl)) {
			t.Fatalf("old keys are read until %v, want the TTL from now (%v)", until, start.Add(ttl))
		}
		wantClaims(t, s, []dedup.Mark{rec(5), msg("msg-1", 100), rec(6), msg("msg-2", 101), rec(8), rec(7),
			msg("q", 102)}, dedup.Done, dedup.Done, dedup.Busy, dedup.Busy, dedup.Claimed, dedup.Claimed,
			dedup.Claimed)
		// Another member started later reads the same decision.
		other := dedup.NewRedis(redis.NewClient(client.(*redis.Client).Options()), dedup.RedisOptions{
			KeyPrefix: prefix, Owner: "pod-1", TTL: ttl,
		})
		defer other.Close()
		if u, err := other.LegacyUntil(ctx); err != nil || !u.Equal(until) {
			t.Fatalf("second member reads old keys until %v, %v; want %v", u, err, until)
		}
		wantClaims(t, other, []dedup.Mark{rec(5)}, dedup.Done)
	})
}

// TestRedisFreshStartReadsNoOldKeys: on a Redis without keys under the prefix there is nothing to upgrade
// from, so claims read no old keys (they would cost a lookup per record for a week); a key that looks old,
// written afterwards, is not honoured.
func TestRedisFreshStartReadsNoOldKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ctx context.Context, client redis.UniversalClient) {
		const prefix = "g:"
		// Another group's keys do not count.
		set(t, client, "other-group:orders/0/1", "D")
		s := dedup.NewRedis(client, dedup.RedisOptions{KeyPrefix: prefix, Owner: "a"})
		defer s.Close()
		if until, err := s.LegacyUntil(ctx); err != nil || !until.IsZero() {
			t.Fatalf("LegacyUntil = %v, %v; want zero", until, err)
		}
		set(t, client, prefix+"orders/0/1", "D")
		wantClaims(t, s, []dedup.Mark{rec(1)}, dedup.Claimed)
	})
}

// TestRedisOldKeysAliasNothing writes previous-release keys whose names are keys of the new layout (an old
// message ID "p:{~orders:0}:1:0" names a position key): their values are not marks of the new layout, so they
// make no record done.
func TestRedisOldKeysAliasNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, ctx context.Context, client redis.UniversalClient) {
		const prefix = "g:"
		s := dedup.NewRedis(client, dedup.RedisOptions{KeyPrefix: prefix, Owner: "a"})
		defer s.Close()
		r := rec(1) // "D" is 0x44: bits 1 and 5 of the chunk, read as a bitmap
		r.Partition, r.Epoch = 0, 1
		pos, _ := s.PositionKey(r)
		for _, k := range []string{pos, s.PartitionLeaseKey(r), s.IDKey("m")} {
			set(t, client, k, "D")
		}
		five := rec(5)
		wantClaims(t, s, []dedup.Mark{r, five, msg("m", 9)}, dedup.Claimed, dedup.Claimed, dedup.Claimed)
		// Marking over such a key makes it a real position key.
		if _, err := s.Apply(ctx, dedup.Ops{Complete: []dedup.Mark{five}}); err != nil {
			t.Fatal(err)
		}
		wantClaims(t, s, []dedup.Mark{r, five}, dedup.Claimed, dedup.Done)
	})
}

// forEachBackend runs fn against miniredis and a real redis-server, each in a subtest.
func forEachBackend(t *testing.T, fn func(t *testing.T, ctx context.Context, client redis.UniversalClient)) {
	for _, be := range redisBackends(t) {
		t.Run(be.name, func(t *testing.T) { fn(t, context.Background(), be.client(t)) })
	}
}

// set writes key the way the previous release did: a value with an expiry.
func set(t *testing.T, client redis.UniversalClient, key, value string) {
	t.Helper()
	if err := client.Set(context.Background(), key, value, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
}

// wantClaims claims ms through s and fails unless the answers are want.
func wantClaims(t *testing.T, s dedup.Store, ms []dedup.Mark, want ...dedup.Status) {
	t.Helper()
	got, err := s.Apply(context.Background(), dedup.Ops{Claim: ms})
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("claims = %v, %v; want %v", got, err, want)
	}
}
