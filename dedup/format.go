package dedup

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// scanCallsPerServer bounds the SCAN calls made, per server, looking for the previous release's keys; with
// scanCount keys per call that is a keyspace of a million keys. A larger one is assumed to hold old keys.
const (
	scanCallsPerServer = 1000
	scanCount          = 1000
)

// detectFormat finds out until when the previous release's keys are read (see Redis), retrying while the
// server cannot be reached, until ctx ends. Until it knows, they are read.
func (r *Redis) detectFormat(ctx context.Context) {
	wait := 100 * time.Millisecond
	for {
		until, err := r.decideFormat(ctx)
		if err == nil {
			r.legacyUntil.Store(until)
			close(r.decided)
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// decideFormat reads p:format, or, when it is missing, scans for the previous release's keys and writes it.
// The first store to write it decides for every member.
func (r *Redis) decideFormat(ctx context.Context) (int64, error) {
	key := r.prefix + formatKey
	for {
		v, err := r.client.Get(ctx, key).Result()
		if err == nil {
			until, perr := strconv.ParseInt(v, 10, 64)
			if perr != nil {
				// Not written by this release: read the old keys, the safe side, for a TTL from now.
				return time.Now().Add(r.ttl).UnixMilli(), nil
			}
			return until, nil
		}
		if !errors.Is(err, redis.Nil) {
			return 0, err
		}
		old, err := r.findLegacyKeys(ctx)
		if err != nil {
			return 0, err
		}
		var until int64
		if old {
			until = time.Now().Add(r.ttl).UnixMilli()
		}
		ok, err := r.client.SetNX(ctx, key, strconv.FormatInt(until, 10), 0).Result()
		if err != nil {
			return 0, err
		}
		if ok {
			return until, nil
		}
		// Another member decided first: read its decision.
	}
}

// findLegacyKeys reports whether a key under the prefix that is not of this release's layout exists, or the
// search could not finish within its bounds (then it answers yes: reading the old keys is the safe side).
func (r *Redis) findLegacyKeys(ctx context.Context) (bool, error) {
	match := globEscape(r.prefix) + "*"
	var found atomic.Bool
	scan := func(ctx context.Context, c *redis.Client) error {
		var cursor uint64
		for range scanCallsPerServer {
			keys, next, err := c.Scan(ctx, cursor, match, scanCount).Result()
			if err != nil {
				return err
			}
			for _, k := range keys {
				rest := k[len(r.prefix):]
				if !strings.HasPrefix(rest, positionSpace) && !strings.HasPrefix(rest, idSpace) {
					found.Store(true)
					return nil
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
		found.Store(true) // too many keys to tell
		return nil
	}
	switch c := r.client.(type) {
	case *redis.Client:
		if err := scan(ctx, c); err != nil {
			return false, err
		}
	case *redis.ClusterClient:
		if err := c.ForEachMaster(ctx, scan); err != nil {
			return false, err
		}
	default:
		return true, nil
	}
	return found.Load(), nil
}

// globEscape escapes the characters SCAN's MATCH treats as a pattern.
func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
