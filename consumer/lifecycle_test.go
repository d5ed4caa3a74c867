package consumer

import (
	"context"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

type nopProcessor struct{}

func (nopProcessor) ProcessBatch(jobs []Job, report Report) {
	for i := range jobs {
		report(nil, i)
	}
}

// TestGroupLifecycleLines: joining the group, each assignment, revocation and loss is exactly one line with the
// partitions and their count; a member that lost its partitions says so again when it rejoins.
func TestGroupLifecycleLines(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	c, err := New(nopProcessor{}, Options{
		Topics: []string{"orders"}, Group: "ops", Logger: zap.New(core),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.cl.Close()
	ctx := context.Background()
	count := func(msg string) int { return logs.FilterMessage(msg).Len() }
	fields := func(msg string, i int) map[string]any { return logs.FilterMessage(msg).All()[i].ContextMap() }

	c.onAssigned(ctx, c.cl, map[string][]int32{"orders": {0, 1}})
	c.onAssigned(ctx, c.cl, map[string][]int32{"orders": {2}})
	if n := count("joined the consumer group"); n != 1 {
		t.Fatalf("%d join lines after two assignments, want 1", n)
	}
	if g := fields("joined the consumer group", 0)["group"]; g != "ops" {
		t.Errorf("join line group %v, want ops", g)
	}
	if n := count("partitions assigned"); n != 2 {
		t.Fatalf("%d assignment lines, want 2", n)
	}
	if got := fields("partitions assigned", 0)["count"]; got != int64(2) {
		t.Errorf("first assignment count %v, want 2", got)
	}

	c.onRevoked(ctx, c.cl, map[string][]int32{"orders": {2}})
	if n := count("partitions revoked"); n != 1 || fields("partitions revoked", 0)["count"] != int64(1) {
		t.Fatalf("revoke lines %d (%v), want one with count 1", n, logs.FilterMessage("partitions revoked").All())
	}
	c.onLost(ctx, c.cl, map[string][]int32{"orders": {0, 1}})
	lost := logs.FilterMessage("partitions lost").All()
	if len(lost) != 1 || lost[0].Level != zapcore.WarnLevel || lost[0].ContextMap()["count"] != int64(2) {
		t.Fatalf("lost lines %v, want one warning with count 2", lost)
	}
	if c.Joined() {
		t.Error("still joined after losing the partitions")
	}
	c.onAssigned(ctx, c.cl, map[string][]int32{"orders": {0}})
	if n := count("joined the consumer group"); n != 2 {
		t.Errorf("%d join lines after rejoining, want 2", n)
	}
}
