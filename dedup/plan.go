package dedup

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// plan is one Apply turned into script operations (see applyScript), each tagged with the server it must run on
// and, on a Cluster, the round it belongs to (see applyCluster).
type plan struct {
	ops    []planOp
	claims []claimParts
	// refreshed are the keys whose expiry the plan extends (see refresher).
	refreshed []string
}

// planOp is one script operation. W carries the bits to set; C is one part of a claim: the keys of it that
// live together.
type planOp struct {
	code byte // 'W', 'P', 'D', 'R' or 'C'
	key  string
	// W and P: the bits, ascending, chunk-relative, within bytes lo to hi; for P the claim of each bit.
	bits   []int64
	claims []int
	lo, hi int64
	claim  int // C: index into plan.claims
	// extend: W and P, whether the key's (the lease's, for P) expiry is extended.
	extend bool
	part   int // C: index into claimParts.parts
	pos    string
	bit    string
	id     string
	lease  string
	old    string
	round  int
	group  groupKey
}

// groupKey says which calls an operation may share: on a standalone server all of them, on a Cluster those of
// one hash slot, on an unknown client (a Ring, which shards by hash tag too) those of one hash tag.
type groupKey struct {
	slot uint16
	key  string
}

// claimParts gathers the answers of the parts of one claim; part -1 holds none.
type claimParts struct {
	parts  []Status
	idPart int // index of the part that takes the ID lease, or -1
}

// status combines the parts: done if any part found a mark, else busy if any found another owner's lease.
func (c *claimParts) status() Status {
	st := Claimed
	for _, s := range c.parts {
		if s == Done {
			return Done
		}
		if s == Busy {
			st = Busy
		}
	}
	return st
}

// tookIDLease reports whether the part that handles the ID lease took it.
func (c *claimParts) tookIDLease() bool { return c.idPart >= 0 && c.parts[c.idPart] == Claimed }

// plan turns ops into script operations; claims are only those at the indexes firsts.
func (r *Redis) plan(ops Ops, firsts []int) *plan {
	p := &plan{claims: make([]claimParts, len(firsts))}
	bases := partitionBases{r: r}
	// One answer per claim, for the claims that have a single part (all of them on a standalone server).
	single := make([]Status, len(firsts))

	// Position marks of Complete and Park: W operations over runs of bytes of each key.
	var writes chunkBits
	for _, ms := range [][]Mark{ops.Complete, ops.Park} {
		for i := range ms {
			m := &ms[i]
			writes.add(bases.chunk(m), m.Offset%chunkOffsets, -1)
		}
	}
	var extended map[string]bool
	for _, run := range writes.runs() {
		ext, seen := extended[run.key]
		if !seen {
			ext = r.refresh.due(run.key, false)
			if extended == nil {
				extended = make(map[string]bool)
			}
			extended[run.key] = ext
			if ext {
				p.refreshed = append(p.refreshed, run.key)
			}
		}
		p.ops = append(p.ops, planOp{code: 'W', key: run.key, bits: run.bits, lo: run.lo, hi: run.hi, round: 1,
			extend: ext, group: r.groupOf(run.key)})
	}
	// ID marks, then the ID leases Park and Release drop.
	for i := range ops.Complete {
		if m := &ops.Complete[i]; m.OwnID {
			k := r.IDKey(m.ID)
			p.ops = append(p.ops, planOp{code: 'D', key: k, round: 2, group: r.groupOf(k)})
		}
	}
	for _, ms := range [][]Mark{ops.Park, ops.Release} {
		for i := range ms {
			if m := &ms[i]; m.OwnID {
				k := r.IDKey(m.ID)
				p.ops = append(p.ops, planOp{code: 'R', key: k, round: 2, group: r.groupOf(k)})
			}
		}
	}

	// Claims. A record without an ID of its own and without an old key to read is plain: its position and its
	// partition's lease are all there is, so plain claims go together, P operations over runs of bytes of each
	// position key. Any other claim is split into the parts that live together.
	nowMs := time.Now().UnixMilli()
	var leases map[string]bool // lease key -> extended by this round
	var plain chunkBits
	for k, i := range firsts {
		m := &ops.Claim[i]
		base := bases.of(m)
		pos := bases.chunk(m)
		c := &p.claims[k]
		c.idPart = -1
		legacy := r.readLegacy(m.ID, nowMs)
		var lease string
		if !m.OwnID {
			lease = base + ":lease"
			if _, ok := leases[lease]; !ok {
				if leases == nil {
					leases = make(map[string]bool)
				}
				ext := r.refresh.due(lease, true)
				leases[lease] = ext
				if ext {
					p.refreshed = append(p.refreshed, lease)
				}
				r.remember(m, lease)
			}
			if !legacy {
				c.parts = single[k : k+1 : k+1]
				plain.add(pos, m.Offset%chunkOffsets, k)
				continue
			}
		}
		posPart := planOp{code: 'C', claim: k, pos: pos, bit: strconv.FormatInt(m.Offset%chunkOffsets, 10),
			lease: lease, round: 1, group: r.groupOf(pos)}
		if m.OwnID {
			posPart.round = 2
		}
		parts := []planOp{posPart}
		// Keys of one group join one part (always so on a standalone server); an ID or old key read in round
		// one pulls its part into round one.
		join := func(op planOp) {
			for j := range parts {
				if parts[j].group == op.group {
					if op.id != "" {
						parts[j].id = op.id
					}
					if op.old != "" {
						parts[j].old = op.old
					}
					parts[j].round = min(parts[j].round, op.round)
					return
				}
			}
			parts = append(parts, op)
		}
		if m.OwnID {
			key := r.IDKey(m.ID)
			join(planOp{code: 'C', id: key, round: 1, group: r.groupOf(key)})
		}
		if legacy {
			key := r.LegacyKey(m.ID)
			join(planOp{code: 'C', old: key, round: 1, group: r.groupOf(key)})
		}
		if len(parts) == 1 {
			c.parts = single[k : k+1 : k+1]
		} else {
			c.parts = make([]Status, len(parts))
		}
		for j := range parts {
			parts[j].claim, parts[j].part = k, j
			if parts[j].id != "" {
				c.idPart = j
			}
			p.ops = append(p.ops, parts[j])
		}
	}
	for _, run := range plain.runs() {
		lease := run.key[:strings.LastIndexByte(run.key[:strings.LastIndexByte(run.key, ':')], ':')] + ":lease"
		p.ops = append(p.ops, planOp{code: 'P', key: run.key, lease: lease, bits: run.bits, claims: run.claims,
			lo: run.lo, hi: run.hi, extend: leases[lease], round: 1, group: r.groupOf(run.key)})
	}
	return p
}

// chunkKey returns the position key of m, whose partition's keys start with base.
func chunkKey(base string, m *Mark) string {
	return base + ":" + strconv.FormatInt(int64(m.Epoch), 10) + ":" + strconv.FormatInt(m.Offset/chunkOffsets, 10)
}

// maxRunGap and maxRunBytes shape the runs of bytes a W or P operation covers: bits further apart than
// maxRunGap bytes start a new run, and no run covers more than maxRunBytes, so the script never moves much more
// than the bytes that hold the bits.
const (
	maxRunGap   = 32
	maxRunBytes = 256
)

// chunkBits gathers bits per position key, each with a claim index (-1 for writes). A round covers few keys,
// so they are found by a linear search, which costs less than a map for so few.
type chunkBits struct {
	keys []string
	bits [][]bitClaim
}

type bitClaim struct {
	bit   int64
	claim int
}

func (c *chunkBits) add(key string, bit int64, claim int) {
	for i := len(c.keys) - 1; i >= 0; i-- {
		if c.keys[i] == key {
			c.bits[i] = append(c.bits[i], bitClaim{bit, claim})
			return
		}
	}
	c.keys = append(c.keys, key)
	c.bits = append(c.bits, []bitClaim{{bit, claim}})
}

// bitRun is a run of bits of one key within bytes lo to hi.
type bitRun struct {
	key    string
	lo, hi int64
	bits   []int64
	claims []int
}

// runs returns the gathered bits as runs, keys in the order they were first seen.
func (c *chunkBits) runs() []bitRun {
	out := make([]bitRun, 0, len(c.keys))
	for k, key := range c.keys {
		bs := c.bits[k]
		slices.SortFunc(bs, func(a, b bitClaim) int { return cmp.Compare(a.bit, b.bit) })
		bits := make([]int64, len(bs))
		claims := make([]int, len(bs))
		start := len(out)
		for j, b := range bs {
			bits[j], claims[j] = b.bit, b.claim
			byteIdx := b.bit / 8
			if last := len(out) - 1; last < start || byteIdx-out[last].hi > maxRunGap || byteIdx-out[last].lo >= maxRunBytes {
				out = append(out, bitRun{key: key, lo: byteIdx, bits: bits[j:j], claims: claims[j:j]})
			}
			run := &out[len(out)-1]
			run.hi = byteIdx
			run.bits = run.bits[:len(run.bits)+1]
			run.claims = run.claims[:len(run.claims)+1]
		}
	}
	return out
}

// partitionBases caches the key base of the partitions of one plan, and the last position key built for each:
// a round usually covers a few partitions, and runs of offsets in one chunk.
type partitionBases struct {
	r     *Redis
	parts []partitionKeys
}

type partitionKeys struct {
	m            *Mark
	base         string
	epoch        int32
	chunk        int64
	chunkKey     string
	haveChunkKey bool
}

func (b *partitionBases) find(m *Mark) *partitionKeys {
	for i := range b.parts {
		o := b.parts[i].m
		if o.Partition == m.Partition && o.TopicID == m.TopicID && (m.TopicID != [16]byte{} || o.Topic == m.Topic) {
			return &b.parts[i]
		}
	}
	b.parts = append(b.parts, partitionKeys{m: m, base: b.r.partitionBase(m)})
	return &b.parts[len(b.parts)-1]
}

// of returns the key base of m's partition.
func (b *partitionBases) of(m *Mark) string { return b.find(m).base }

// chunk returns the position key of m.
func (b *partitionBases) chunk(m *Mark) string {
	pk := b.find(m)
	c := m.Offset / chunkOffsets
	if !pk.haveChunkKey || pk.epoch != m.Epoch || pk.chunk != c {
		pk.epoch, pk.chunk, pk.chunkKey, pk.haveChunkKey = m.Epoch, c, chunkKey(pk.base, m), true
	}
	return pk.chunkKey
}

// groupOf returns the group a key's operations belong to on this client.
func (r *Redis) groupOf(key string) groupKey {
	switch r.grouping {
	case groupAll:
		return groupKey{}
	case groupBySlot:
		return groupKey{slot: hashSlot(key)}
	default:
		return groupKey{key: hashTag(key)}
	}
}

// scriptCall is one invocation of applyScript and where its answers go.
type scriptCall struct {
	group  groupKey
	keys   []string
	index  map[string]int
	args   []any
	claims [][2]int // {claim, part} per C operation, in order
	marks  int
	cmd    *redis.Cmd
}

func (c *scriptCall) keyIndex(k string) int {
	if k == "" {
		return 0
	}
	if c.index == nil {
		// Few keys (a call for records without IDs of their own has two per partition): a linear search.
		for i, o := range c.keys {
			if o == k {
				return i + 1
			}
		}
		c.keys = append(c.keys, k)
		if len(c.keys) > 16 {
			c.index = make(map[string]int, 2*len(c.keys))
			for i, o := range c.keys {
				c.index[o] = i + 1
			}
		}
		return len(c.keys)
	}
	i, ok := c.index[k]
	if !ok {
		c.keys = append(c.keys, k)
		i = len(c.keys)
		c.index[k] = i
	}
	return i
}

// calls groups the operations of a round (0: all) into script calls, keeping their order within each group and
// starting a new call once one covers maxMarksPerCall records.
func (p *plan) calls(r *Redis, round int) []*scriptCall {
	var calls []*scriptCall
	open := make(map[groupKey]*scriptCall)
	for i := range p.ops {
		op := &p.ops[i]
		if round != 0 && op.round != round {
			continue
		}
		c := open[op.group]
		if c == nil || c.marks >= maxMarksPerCall {
			c = &scriptCall{group: op.group, args: make([]any, 5, 5+7*(len(p.ops)-i)),
				keys: make([]string, 0, 2*(len(p.ops)-i))}
			c.args[0], c.args[1], c.args[2], c.args[3], c.args[4] = r.leaseValue, r.leaseMs, r.ttlMs, r.idTTL, chunkBytes-1
			open[op.group] = c
			calls = append(calls, c)
		}
		switch op.code {
		case 'W':
			c.args = append(c.args, "W", c.keyIndex(op.key), len(op.bits), op.lo, op.hi, packBits(op.bits),
				flag(op.extend))
			c.marks += len(op.bits)
		case 'P':
			c.args = append(c.args, "P", c.keyIndex(op.key), c.keyIndex(op.lease), len(op.bits), op.lo, op.hi,
				packBits(op.bits), flag(op.extend))
			for _, claim := range op.claims {
				c.claims = append(c.claims, [2]int{claim, 0})
			}
			c.marks += len(op.bits)
		case 'D', 'R':
			c.args = append(c.args, string(op.code), c.keyIndex(op.key))
			c.marks++
		case 'C':
			bit := op.bit
			if bit == "" {
				bit = "0"
			}
			c.args = append(c.args, "C", c.keyIndex(op.pos), bit, c.keyIndex(op.id), c.keyIndex(op.lease),
				c.keyIndex(op.old))
			c.claims = append(c.claims, [2]int{op.claim, op.part})
			c.marks++
		}
	}
	return calls
}

// flag is a boolean as the script takes it.
func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}

// packBits encodes chunk-relative bit offsets (below 65,536) as two bytes each, big-endian: one argument for a
// run of records instead of one per record, which spares the server parsing an argument per record.
func packBits(bits []int64) string {
	b := make([]byte, 2*len(bits))
	for i, v := range bits {
		b[2*i], b[2*i+1] = byte(v>>8), byte(v)
	}
	return string(b)
}

// runPlan sends calls in one pipeline and files the claim answers into p. The script is sent by digest; when the
// server answers NOSCRIPT (after a restart, a failover or SCRIPT FLUSH), it is loaded (on every shard of a
// cluster) and only the refused calls are sent again, once.
func (r *Redis) runPlan(ctx context.Context, p *plan, calls []*scriptCall) error {
	if len(calls) == 0 {
		return nil
	}
	hash := applyScript.Hash()
	send := func(calls []*scriptCall) error {
		pipe := r.client.Pipeline()
		for _, c := range calls {
			c.cmd = pipe.EvalSha(ctx, hash, c.keys, c.args...)
		}
		return execPipeline(ctx, pipe)
	}
	if err := send(calls); err != nil {
		return err
	}
	var missing []*scriptCall
	for _, c := range calls {
		if redis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		if err := applyScript.Load(ctx, r.client).Err(); err != nil {
			return fmt.Errorf("loading script: %w", err)
		}
		if err := send(missing); err != nil {
			return err
		}
	}
	for _, c := range calls {
		replies, err := c.cmd.Int64Slice()
		if err != nil {
			return err
		}
		if len(replies) != len(c.claims) {
			return fmt.Errorf("script answered %d statuses for %d claims", len(replies), len(c.claims))
		}
		for j, n := range replies {
			if n < 0 || n > int64(Busy) {
				return fmt.Errorf("unexpected script reply %d", n)
			}
			cp := c.claims[j]
			p.claims[cp[0]].parts[cp[1]] = Status(n)
		}
	}
	return nil
}
