package connect

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kafka-sidecar/kafka-sidecar/config"
	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
)

// startSentinel runs redis-server as a Sentinel on a free port of 127.0.0.1, monitoring master as "mymaster"
// with a quorum of 1, and stops it when the test ends.
func startSentinel(t *testing.T, master string) string {
	t.Helper()
	bin := redistest.Binary(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	host, mport, _ := net.SplitHostPort(master)
	conf := fmt.Sprintf("bind 127.0.0.1\nport %d\ndir %s\nsentinel monitor mymaster %s %s 1\n"+
		"sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n", port, dir, host, mport)
	path := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(dir, "sentinel.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, path, "--sentinel")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("sentinel log:\n%s", b)
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 250 * time.Millisecond})
	defer c.Close()
	waitUntil(t, 15*time.Second, "the Sentinel answering", func() bool { return c.Ping(context.Background()).Err() == nil })
	return addr
}

func waitUntil(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", bound, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSentinelNewMasterLine fails a real Sentinel-managed master over to its replica and checks that the
// sidecar's Redis client reports it as exactly one "redis: new Sentinel master" line naming the new address,
// and that no line of the client's reached stderr as plain text (it goes through the log).
func TestSentinelNewMasterLine(t *testing.T) {
	master := redistest.Start(t, redistest.Options{})
	replica := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	rc := replica.Client(t)
	host, port, _ := net.SplitHostPort(master.Addr())
	if err := rc.Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 15*time.Second, "the replica in sync", func() bool {
		info, err := rc.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	sentinel := startSentinel(t, master.Addr())

	core, logs := observer.New(zapcore.DebugLevel)
	cfg := &config.Config{RedisURL: config.Secret("redis-sentinel://" + sentinel + "/mymaster")}
	stop := RouteRedisLogs(zap.New(core), cfg)
	client, err := Redis(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Close(); stop() }()
	if err := client.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatalf("writing through the Sentinel client: %v", err)
	}
	newMaster := func(addr string) int {
		return logs.FilterMessage("redis: new Sentinel master").FilterField(zap.String("addr", addr)).Len()
	}
	if n := newMaster(master.Addr()); n != 1 {
		t.Errorf("%d lines naming the first master, want 1: %v", n, logs.All())
	}

	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel})
	defer sc.Close()
	waitUntil(t, 30*time.Second, "the Sentinel to accept a failover (it must know the replica)", func() bool {
		return sc.Failover(ctx, "mymaster").Err() == nil
	})
	waitUntil(t, 30*time.Second, "the client to follow the new master", func() bool {
		return client.Set(ctx, "k", "after", 0).Err() == nil && newMaster(replica.Addr()) > 0
	})
	if got, _ := rc.Get(ctx, "k").Result(); got != "after" {
		t.Errorf("the write after the failover reached %q on the replica, want it promoted and written", got)
	}
	if n := newMaster(replica.Addr()); n != 1 {
		t.Errorf("%d lines naming the new master, want exactly 1: %v", n, logs.All())
	}
	for _, e := range logs.All() {
		if e.LoggerName != "redis" {
			t.Errorf("a go-redis line outside the redis logger: %+v", e)
		}
	}
}
