package dedup

import (
	"bufio"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// RedisInspector reads what the durability audit judges of the Redis deployment behind a store's client: that
// it answers, and the persistence, memory and eviction settings of each of its servers.
type RedisInspector struct{ client redis.UniversalClient }

// NewRedisInspector inspects the servers behind client, which it does not close.
func NewRedisInspector(client redis.UniversalClient) *RedisInspector {
	return &RedisInspector{client: client}
}

// Ping reports whether Redis answers.
func (i *RedisInspector) Ping(ctx context.Context) error { return i.client.Ping(ctx).Err() }

// Servers reads every master of a cluster (sorted by address), else the one server behind the client.
func (i *RedisInspector) Servers(ctx context.Context) ([]RedisServer, error) {
	type node struct {
		addr string
		cmd  redis.Cmdable
	}
	var nodes []node
	if cc, ok := i.client.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		err := cc.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			nodes = append(nodes, node{addr: c.Options().Addr, cmd: c})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("listing cluster masters: %w", err)
		}
		slices.SortFunc(nodes, func(a, b node) int { return strings.Compare(a.addr, b.addr) })
	} else {
		nodes = []node{{cmd: i.client}}
	}
	servers := make([]RedisServer, len(nodes))
	for k, n := range nodes {
		servers[k] = readServer(ctx, n.addr, n.cmd)
	}
	return servers, nil
}

// RedisServer is what one Redis server told about its persistence and memory. Errors are kept per source, so
// a disabled CONFIG still leaves INFO to judge by.
type RedisServer struct {
	// Addr names the server among several (a cluster's masters); empty for the one server of a client.
	Addr           string
	Persistence    map[string]string // INFO persistence
	PersistenceErr error
	Memory         map[string]string // INFO memory
	MemoryErr      error
	Config         map[string]string // CONFIG GET save / appendonly / appendfsync / maxmemory-policy
	ConfigErr      error             // CONFIG is often disabled or renamed on managed Redis
}

// readServer reads INFO persistence, INFO memory and the CONFIG values the audit judges.
func readServer(ctx context.Context, addr string, cmd redis.Cmdable) RedisServer {
	rs := RedisServer{Addr: addr, Config: map[string]string{}}
	var text string
	if text, rs.PersistenceErr = cmd.Info(ctx, "persistence").Result(); rs.PersistenceErr == nil {
		rs.Persistence = parseInfo(text)
	}
	if text, rs.MemoryErr = cmd.Info(ctx, "memory").Result(); rs.MemoryErr == nil {
		rs.Memory = parseInfo(text)
	}
	for _, key := range []string{"save", "appendonly", "appendfsync", "maxmemory-policy"} {
		vals, err := cmd.ConfigGet(ctx, key).Result()
		if err != nil {
			rs.ConfigErr = err
			break
		}
		if v, ok := vals[key]; ok {
			rs.Config[key] = v
		}
	}
	return rs
}

// parseInfo parses the text of an INFO reply into its key:value fields (both trimmed), skipping "# Section"
// lines, blank lines and lines without a colon. A value keeps any further colons.
func parseInfo(text string) map[string]string {
	fields := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if k = strings.TrimSpace(k); !ok || k == "" {
			continue
		}
		fields[k] = strings.TrimSpace(v)
	}
	return fields
}
