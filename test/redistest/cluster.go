package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterSlots is the number of hash slots in a Redis Cluster.
const clusterSlots = 16384

// Cluster is a Redis Cluster of real redis-server processes on 127.0.0.1, every node a master owning an equal
// share of the slots, without replicas. Its nodes are ordinary Servers: a test may stop one to take its slots
// away.
type Cluster struct {
	// Nodes are the masters; node i owns the i-th share of the slots.
	Nodes []*Server
}

// StartCluster starts masters nodes (at least 1) with cluster mode enabled, assigns the slots, joins the nodes
// and waits until every node reports the cluster healthy. It needs redis-server 7.0 or later (for an explicit
// cluster bus port) and skips the test otherwise.
func StartCluster(tb testing.TB, masters int) *Cluster {
	tb.Helper()
	if masters < 1 {
		tb.Fatalf("redistest: StartCluster needs at least one master, got %d", masters)
	}
	if major := serverMajorVersion(tb, Binary(tb)); major < 7 {
		tb.Skipf("redis-server %d.x cannot set the cluster bus port; a cluster test needs 7.0 or later", major)
	}
	c := &Cluster{}
	for range masters {
		busPort, err := freePort()
		if err != nil {
			tb.Fatalf("finding a free port for the cluster bus: %v", err)
		}
		c.Nodes = append(c.Nodes, Start(tb, Options{Config: map[string]string{
			"cluster-enabled":      "yes",
			"cluster-config-file":  "nodes.conf",
			"cluster-port":         strconv.Itoa(busPort),
			"cluster-node-timeout": "5000",
		}}))
	}

	ctx := context.Background()
	first := c.Nodes[0].Client(tb)
	for i, n := range c.Nodes {
		cl := n.Client(tb)
		lo, hi := i*clusterSlots/masters, (i+1)*clusterSlots/masters-1
		if err := cl.ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			tb.Fatalf("assigning slots %d-%d to node %d: %v", lo, hi, i, err)
		}
		if i == 0 {
			continue
		}
		bus, err := cl.ConfigGet(ctx, "cluster-port").Result()
		if err != nil {
			tb.Fatalf("reading node %d's cluster port: %v", i, err)
		}
		host, port := "127.0.0.1", strconv.Itoa(n.port)
		if err := first.Do(ctx, "CLUSTER", "MEET", host, port, bus["cluster-port"]).Err(); err != nil {
			tb.Fatalf("joining node %d: %v", i, err)
		}
	}
	c.waitHealthy(tb, masters)
	return c
}

// waitHealthy polls CLUSTER INFO on every node until each knows all nodes and reports state ok.
func (c *Cluster) waitHealthy(tb testing.TB, nodes int) {
	tb.Helper()
	ctx := context.Background()
	clients := make([]*redis.Client, len(c.Nodes))
	for i, n := range c.Nodes {
		clients[i] = n.Client(tb)
	}
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var notReady string
		for i, cl := range clients {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil {
				notReady = fmt.Sprintf("node %d: %v", i, err)
				break
			}
			if !strings.Contains(info, "cluster_state:ok") ||
				!strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(nodes)) {
				notReady = fmt.Sprintf("node %d: %s", i, strings.Join(strings.Fields(info)[:3], " "))
				break
			}
		}
		if notReady == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("cluster not healthy within 30s: %s", notReady)
		}
		<-tick.C
	}
}

// Addrs returns every node's host:port.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// ClusterOptions returns go-redis options that reach the cluster. Each call returns a new value.
func (c *Cluster) ClusterOptions() *redis.ClusterOptions {
	return &redis.ClusterOptions{Addrs: c.Addrs()}
}

// Client returns a new cluster client, closed when the test ends.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	cl := redis.NewClusterClient(c.ClusterOptions())
	tb.Cleanup(func() { _ = cl.Close() })
	return cl
}

// serverMajorVersion returns the major version of the redis-server binary.
func serverMajorVersion(tb testing.TB, bin string) int {
	tb.Helper()
	major, _, err := serverVersion(bin)
	if err != nil {
		tb.Fatalf("reading redis-server version: %v", err)
	}
	return major
}
