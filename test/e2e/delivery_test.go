package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/metrics"
	"github.com/twmb/franz-go/pkg/kadm"
)

// TestCommitAfterDone holds some records unanswered in the app and reads the group's committed offsets over
// and over meanwhile: they reach each held record exactly and never pass it, while a partition without a
// held record commits to its end. After release, every partition commits to its end.
func TestCommitAfterDone(t *testing.T) {
	const partitions, perPartition = 3, 20
	s := newStack(t, partitions)
	recs := makeRecords(s.topic, partitions, partitions*perPartition, "m")
	s.kafka.produce(t, recs...)

	// Hold one record in partition 0 and one in partition 1 (record i sits in partition i%3 at offset i/3).
	heldP0, heldP1 := recs[5*3], recs[10*3+1]
	heldIDs := []string{headerValue(heldP0, idHeader), headerValue(heldP1, idHeader)}
	limit := map[int32]int64{heldP0.Partition: heldP0.Offset, heldP1.Partition: heldP1.Offset}
	s.app.hold(heldIDs...)

	// The watcher reads the committed offsets every 20 ms for as long as the records are held.
	var (
		mu         sync.Mutex
		violations []string
		reads      int
	)
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for watchCtx.Err() == nil {
			ctx, cancel := context.WithTimeout(watchCtx, 5*time.Second)
			got, err := s.kafka.committed(ctx, s.group, s.topic)
			cancel()
			if err == nil {
				mu.Lock()
				reads++
				for p, max := range limit {
					if got[p] > max {
						violations = append(violations, fmt.Sprintf("partition %d committed at %d, past the held record at offset %d", p, got[p], max))
					}
				}
				mu.Unlock()
			}
			select {
			case <-watchCtx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	// The held requests must outlive the whole observation (joining a real cluster alone can take seconds):
	// an app timeout would turn them into a second attempt, which is correct but not what is watched here.
	sc := startSidecar(t, s.env("SIDECAR_ORDERING=unordered", "SIDECAR_APP_TIMEOUT=2m"))
	ends := endsOf(recs)
	// Everything but the two held records is delivered, the free partition commits to its end, and the held
	// partitions commit exactly up to the held records (the done prefix), not beyond.
	waitFor(t, 30*time.Second, func() bool { return len(s.app.accepted()) == len(recs)-2 },
		"%d records accepted by the app while 2 are held", len(recs)-2)
	s.kafka.waitCommitted(t, s.group, s.topic, map[int32]int64{
		heldP0.Partition: heldP0.Offset, heldP1.Partition: heldP1.Offset, 2: ends[2],
	}, 15*time.Second)
	// Several commit intervals with the records still held: the commits stay where they are.
	holdsFor(t, 500*time.Millisecond, func() bool { return len(s.app.requestsFor(heldIDs[0])) == 1 },
		"the held record stays in its one request")
	stopWatch()
	<-watched
	mu.Lock()
	if len(violations) > 0 {
		t.Fatalf("committed offsets passed records that were not done (%d violations), first: %s", len(violations), violations[0])
	}
	t.Logf("read the committed offsets %d times while records were held: never past them", reads)
	mu.Unlock()

	s.app.releaseHeld()
	s.kafka.waitCommitted(t, s.group, s.topic, ends, 15*time.Second)
	if got := sc.sc.Metrics().Totals(); got.Delivered != int64(len(recs)) {
		t.Errorf("Totals().Delivered = %d, want %d", got.Delivered, len(recs))
	}
}

// TestConsumerOffsetLost delivers N records, stops the sidecar, resets the group's committed offsets to the
// start (the "consumer offset lost" incident), and restarts: Redis suppresses every redelivery, so the app
// receives nothing more.
func TestConsumerOffsetLost(t *testing.T) {
	const partitions, n = 3, 60
	s := newStack(t, partitions)
	recs := makeRecords(s.topic, partitions, n, "lost")
	s.kafka.produce(t, recs...)

	first := startSidecar(t, s.env())
	waitFor(t, 30*time.Second, func() bool { return first.sc.Metrics().Totals().Delivered == n },
		"%d records delivered", n)
	s.kafka.waitCommitted(t, s.group, s.topic, endsOf(recs), 15*time.Second)
	first.stop(t)
	before := s.app.total()
	if before != n {
		t.Fatalf("app received %d requests on the first run, want %d", before, n)
	}

	// Reset to the start: the group is empty after a clean stop, so an admin commit is accepted.
	reset := kadm.Offsets{}
	for p := range int32(partitions) {
		reset.AddOffset(s.topic, p, 0, -1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := s.kafka.adm.CommitOffsets(ctx, s.group, reset)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("resetting the group's offsets to 0: %v", err)
	}
	s.kafka.waitCommitted(t, s.group, s.topic, map[int32]int64{0: 0, 1: 0, 2: 0}, 5*time.Second)

	second := startSidecar(t, s.env())
	waitFor(t, 30*time.Second, func() bool { return second.sc.Metrics().Totals().Duplicates == n },
		"all %d redelivered records suppressed as duplicates (have %+v)", n, second.sc.Metrics().Totals())
	s.kafka.waitCommitted(t, s.group, s.topic, endsOf(recs), 15*time.Second)
	if got := s.app.total() - before; got != 0 {
		t.Errorf("the app received %d deliveries after the offset loss, want 0", got)
	}
	if got := second.sc.Metrics().Totals(); got.Delivered != 0 {
		t.Errorf("second run Totals().Delivered = %d, want 0", got.Delivered)
	}
}

// TestSIGKILLMidStream kills the real binary with SIGKILL while it delivers, then starts it again with the
// same group and instance ID: every record reaches the app, and the only records delivered twice are the
// ones in flight at the kill (at most SIDECAR_MAX_IN_FLIGHT).
func TestSIGKILLMidStream(t *testing.T) {
	const partitions, n, maxInFlight = 4, 400, 8
	s := newStack(t, partitions)
	recs := makeRecords(s.topic, partitions, n, "kill")
	s.kafka.produce(t, recs...)
	s.app.setDelay(2 * time.Millisecond)
	env := s.env("SIDECAR_KAFKA_INSTANCE_ID=e2e-pod-0", fmt.Sprintf("SIDECAR_MAX_IN_FLIGHT=%d", maxInFlight))

	p1 := startBinary(t, env)
	waitFor(t, 60*time.Second, func() bool { return len(s.app.accepted()) >= n/4 },
		"a quarter of the records delivered before the kill")
	p1.signal(t, syscall.SIGKILL)
	if code := p1.wait(t, 10*time.Second); code != -1 {
		t.Fatalf("after SIGKILL the process exited with %d, want death by signal", code)
	}
	atKill := len(s.app.accepted())
	if atKill == n {
		t.Fatalf("all %d records were delivered before the kill: the test killed nothing mid-stream", n)
	}

	p2 := startBinary(t, env)
	waitFor(t, 90*time.Second, func() bool { return len(s.app.accepted()) == n },
		"every record accepted after the restart (output of the restarted process:\n%s)", lazyOutput{p2})
	s.kafka.waitCommitted(t, s.group, s.topic, endsOf(recs), 30*time.Second)
	p2.signal(t, syscall.SIGTERM)
	if code := p2.wait(t, 30*time.Second); code != 0 {
		t.Errorf("restarted process exited with %d after SIGTERM, want 0", code)
	}

	dups := 0
	for _, c := range s.app.accepted() {
		dups += c - 1
	}
	t.Logf("SIGKILL after %d of %d records: %d records delivered twice (in flight at the kill; bound %d)", atKill, n, dups, maxInFlight)
	if dups > maxInFlight {
		t.Errorf("%d duplicate deliveries, more than the %d records that can be in flight at once", dups, maxInFlight)
	}
	for id := range recordIDs(recs) {
		if s.app.accepted()[id] == 0 {
			t.Errorf("record %s never reached the app", id)
		}
	}
}

// lazyOutput prints the end of a process's output when a failure message is formatted, not before.
type lazyOutput struct{ p *proc }

func (l lazyOutput) String() string { return tail(l.p.out.String(), 3000) }

// TestBadConfig runs the binary with missing and wrong variables: it exits 2 and names every bad variable
// on stderr, several of them in one message.
func TestBadConfig(t *testing.T) {
	valid := map[string]string{
		"SIDECAR_KAFKA_BROKERS": "127.0.0.1:1",
		"SIDECAR_KAFKA_TOPICS":  "orders",
		"SIDECAR_KAFKA_GROUP":   "g1",
		"SIDECAR_REDIS_URL":     "redis://127.0.0.1:1/0",
		"SIDECAR_ADMIN_ADDR":    "127.0.0.1:0",
	}
	tests := []struct {
		name  string
		unset []string
		set   map[string]string
		want  []string
	}{
		{name: "brokers missing", unset: []string{"SIDECAR_KAFKA_BROKERS"}, want: []string{"SIDECAR_KAFKA_BROKERS"}},
		{name: "topics missing", unset: []string{"SIDECAR_KAFKA_TOPICS"}, want: []string{"SIDECAR_KAFKA_TOPICS"}},
		{name: "group missing", unset: []string{"SIDECAR_KAFKA_GROUP"}, want: []string{"SIDECAR_KAFKA_GROUP"}},
		{name: "redis url missing with redis dedup", unset: []string{"SIDECAR_REDIS_URL"}, want: []string{"SIDECAR_REDIS_URL"}},
		{name: "broker not host:port", set: map[string]string{"SIDECAR_KAFKA_BROKERS": "localhost"}, want: []string{"SIDECAR_KAFKA_BROKERS"}},
		{name: "redis url wrong scheme", set: map[string]string{"SIDECAR_REDIS_URL": "http://127.0.0.1:6379"}, want: []string{"SIDECAR_REDIS_URL"}},
		{name: "ordering unknown", set: map[string]string{"SIDECAR_ORDERING": "sideways"}, want: []string{"SIDECAR_ORDERING"}},
		{name: "dedup unknown", set: map[string]string{"SIDECAR_DEDUP": "disk"}, want: []string{"SIDECAR_DEDUP"}},
		{name: "start offset unknown", set: map[string]string{"SIDECAR_KAFKA_START_OFFSET": "middle"}, want: []string{"SIDECAR_KAFKA_START_OFFSET"}},
		{name: "max in flight not a number", set: map[string]string{"SIDECAR_MAX_IN_FLIGHT": "lots"}, want: []string{"SIDECAR_MAX_IN_FLIGHT"}},
		{name: "max in flight zero", set: map[string]string{"SIDECAR_MAX_IN_FLIGHT": "0"}, want: []string{"SIDECAR_MAX_IN_FLIGHT"}},
		{name: "app timeout not a duration", set: map[string]string{"SIDECAR_APP_TIMEOUT": "soon"}, want: []string{"SIDECAR_APP_TIMEOUT"}},
		{name: "retry delays malformed", set: map[string]string{"SIDECAR_RETRY_DELAYS": "1s,later"}, want: []string{"SIDECAR_RETRY_DELAYS"}},
		{name: "app url not http", set: map[string]string{"SIDECAR_APP_URL": "ftp://127.0.0.1/"}, want: []string{"SIDECAR_APP_URL"}},
		{name: "commit interval set but empty", set: map[string]string{"SIDECAR_COMMIT_INTERVAL": ""}, want: []string{"SIDECAR_COMMIT_INTERVAL"}},
		{name: "session timeout below 6s", set: map[string]string{"SIDECAR_KAFKA_SESSION_TIMEOUT": "1s"}, want: []string{"SIDECAR_KAFKA_SESSION_TIMEOUT"}},
		{
			name:  "several at once",
			unset: []string{"SIDECAR_KAFKA_BROKERS", "SIDECAR_KAFKA_GROUP"},
			set:   map[string]string{"SIDECAR_ORDERING": "sideways", "SIDECAR_APP_TIMEOUT": "soon"},
			want:  []string{"SIDECAR_KAFKA_BROKERS", "SIDECAR_KAFKA_GROUP", "SIDECAR_ORDERING", "SIDECAR_APP_TIMEOUT"},
		},
		{
			name:  "empty environment",
			unset: []string{"SIDECAR_KAFKA_BROKERS", "SIDECAR_KAFKA_TOPICS", "SIDECAR_KAFKA_GROUP", "SIDECAR_REDIS_URL", "SIDECAR_ADMIN_ADDR"},
			want:  []string{"SIDECAR_KAFKA_BROKERS", "SIDECAR_KAFKA_TOPICS", "SIDECAR_KAFKA_GROUP", "SIDECAR_REDIS_URL"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{}
			for k, v := range valid {
				vars[k] = v
			}
			for _, k := range tc.unset {
				delete(vars, k)
			}
			for k, v := range tc.set {
				vars[k] = v
			}
			var env []string
			for k, v := range vars {
				env = append(env, k+"="+v)
			}
			p := startBinary(t, env)
			code := p.wait(t, 15*time.Second)
			stderr := p.stderr.String()
			if code != 2 {
				t.Fatalf("exit code %d, want 2; stderr:\n%s", code, stderr)
			}
			for _, v := range tc.want {
				if !strings.Contains(stderr, v) {
					t.Errorf("stderr does not name %s:\n%s", v, stderr)
				}
			}
			if got := strings.Count(stderr, "invalid configuration"); got != 1 {
				t.Errorf("stderr holds %d configuration messages, want every problem in one:\n%s", got, stderr)
			}
		})
	}
}

// TestAppDownAtStart starts the sidecar while the app refuses connections: it pauses without using any
// attempt, and once the app listens every record is delivered on its first attempt.
func TestAppDownAtStart(t *testing.T) {
	const partitions, n = 2, 20
	s := newStack(t, partitions)
	recs := makeRecords(s.topic, partitions, n, "down")
	s.kafka.produce(t, recs...)
	s.app.down()

	sc := startSidecar(t, s.env())
	// The sidecar has noticed once it paused for the app; it then offers records again and again.
	waitFor(t, 30*time.Second, func() bool {
		m := scrape(t, sc.admin)
		v, _ := metricValue(m, "kafka_sidecar_deliveries_total", map[string]string{"result": "app_unavailable"})
		return v >= 3
	}, "three deliveries classified app_unavailable")
	if got := sc.sc.Metrics().Totals(); got != (metrics.Totals{}) {
		t.Fatalf("while the app was down: %+v, want nothing finished", got)
	}
	if _, status, err := get(sc.admin, "/readyz"); err != nil || status != 503 {
		t.Errorf("/readyz while the app is down: status %d (err %v), want 503", status, err)
	}

	s.app.up()
	waitFor(t, 30*time.Second, func() bool { return len(s.app.accepted()) == n }, "all %d records accepted", n)
	s.kafka.waitCommitted(t, s.group, s.topic, endsOf(recs), 15*time.Second)
	for _, r := range s.app.requests() {
		if r.Attempt != 1 {
			t.Errorf("record %s reached the app with Kafka-Attempt %d: an outage must not use attempts", r.ID, r.Attempt)
		}
	}
	if got := sc.sc.Metrics().Totals(); got.Retried != 0 || got.DeadLettered != 0 || got.Delivered != n {
		t.Errorf("Totals() = %+v, want %d delivered and nothing retried or dead-lettered", got, n)
	}
	if size := s.kafka.topicSize(t, s.dlqTopic()); size != 0 {
		t.Errorf("dead-letter topic holds %d records, want 0", size)
	}
}

// TestSIGTERMCommitsDelivered sends SIGTERM to the binary mid-stream: it exits 0, and the committed offsets
// cover exactly what the app accepted (partition ordering makes "delivered" a prefix of each partition).
func TestSIGTERMCommitsDelivered(t *testing.T) {
	const partitions, n = 3, 300
	s := newStack(t, partitions)
	recs := makeRecords(s.topic, partitions, n, "term")
	s.kafka.produce(t, recs...)
	s.app.setDelay(5 * time.Millisecond)

	p := startBinary(t, s.env("SIDECAR_ORDERING=partition"))
	waitFor(t, 60*time.Second, func() bool { return len(s.app.accepted()) >= n/5 },
		"a fifth of the records delivered before SIGTERM")
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0; output:\n%s", code, tail(p.out.String(), 3000))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := s.kafka.committed(ctx, s.group, s.topic)
	if err != nil {
		t.Fatal(err)
	}
	byID := recordIDs(recs)
	delivered := map[int32]int64{}
	for id := range s.app.accepted() {
		r := byID[id]
		if r.Offset+1 > delivered[r.Partition] {
			delivered[r.Partition] = r.Offset + 1
		}
		if got[r.Partition] <= r.Offset {
			t.Errorf("record %s (partition %d offset %d) was delivered but the committed offset is %d", id, r.Partition, r.Offset, got[r.Partition])
		}
	}
	// Nothing below the commit was skipped: every offset under it reached the app.
	accepted := s.app.accepted()
	for _, r := range recs {
		if r.Offset < got[r.Partition] && accepted[headerValue(r, idHeader)] == 0 {
			t.Errorf("offset %d of partition %d is below the commit %d but never reached the app", r.Offset, r.Partition, got[r.Partition])
		}
	}
	t.Logf("SIGTERM after %d of %d records; committed %v, delivered up to %v", len(accepted), n, got, delivered)
}
