package consumer

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"
)

// holdingProcessor reports every record done at once except the one at offset hold, whose Report it keeps
// until the test releases it.
type holdingProcessor struct {
	hold int64
	mu   sync.Mutex
	seen int
	// held receives the function that reports the held record done.
	held chan func()
}

func (h *holdingProcessor) ProcessBatch(jobs []Job, report Report) {
	for i, j := range jobs {
		h.mu.Lock()
		h.seen++
		h.mu.Unlock()
		if j.Rec.Offset == h.hold {
			i := i
			h.held <- func() { report(nil, i) }
			continue
		}
		report(nil, i)
	}
}

func (h *holdingProcessor) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen
}

// TestConsumerCommitsBelowTheFirstUndoneRecord runs a Consumer against a kfake cluster: while the record at
// offset 4 is not done the committed offset stays at 4, however many later records are done; once it is done,
// the commit moves to the end; Run returns nil when its context ends.
func TestConsumerCommitsBelowTheFirstUndoneRecord(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	seeds := kgo.SeedBrokers(cluster.ListenAddrs()...)
	cl, err := kgo.NewClient(seeds, kgo.DefaultProduceTopic("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 10
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	proc := &holdingProcessor{hold: 4, held: make(chan func(), 1)}
	c, err := New(proc, Options{
		ClientOpts:      []kgo.Opt{seeds, kgo.MetadataMinAge(50 * time.Millisecond)},
		Topics:          []string{"orders"},
		Group:           "billing",
		Ordering:        Unordered,
		MaxInFlight:     n,
		BatchMaxRecords: 3,
		CommitInterval:  5 * time.Millisecond,
		ShutdownTimeout: 5 * time.Second,
		Logger:          zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- c.Run(runCtx) }()

	adm := kadm.NewClient(cl)
	committed := func() int64 {
		offs, err := adm.FetchOffsets(ctx, "billing")
		if err != nil {
			return -1
		}
		o, ok := offs.Lookup("orders", 0)
		if !ok {
			return -1
		}
		return o.At
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting for %s (committed %d, processed %d)", what, committed(), proc.count())
			}
			time.Sleep(5 * time.Millisecond) // polling the broker's state, not synchronising with it
		}
	}

	var release func()
	select {
	case release = <-proc.held:
	case <-ctx.Done():
		t.Fatal("the record at offset 4 never reached the processor")
	}
	waitFor("every record handed out and the commit at 4", func() bool { return proc.count() == n && committed() == 4 })
	// Ten commit intervals later it has not moved past the undone record.
	for range 10 {
		time.Sleep(5 * time.Millisecond) // one commit interval; the check is that nothing happens
		if got := committed(); got != 4 {
			t.Fatalf("committed %d while offset 4 is not done, want 4", got)
		}
	}
	release()
	waitFor("the commit at the end", func() bool { return committed() == n })

	stop()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run = %v, want nil after its context ended", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of its context ending")
	}
}
