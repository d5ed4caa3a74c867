package chaos

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Kafka node bounds: cluster.sh bounds its own waits; these keep a wedged script or a slow recovery from
// outliving the run.
const (
	scriptTimeout = 3 * time.Minute
	inSyncTimeout = 3 * time.Minute
)

// cluster is the Kafka the run uses: an in-process kfake cluster, or a real one reached through its seeds and
// controlled through cluster.sh.
type cluster struct {
	seeds  []string
	fake   *kfake.Cluster
	script string // cluster.sh; empty when nodes cannot be killed
	client *kgo.Client
	adm    *kadm.Client
}

// openCluster starts kfake when seeds is empty, else connects to the real cluster.
func openCluster(seeds []string, script string) (*cluster, error) {
	c := &cluster{seeds: seeds, script: script}
	if len(seeds) == 0 {
		// KIP-848 members get the 6 s session the classic ones have, so a killed one is replaced as quickly.
		fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.BrokerConfigs(map[string]string{
			"group.consumer.session.timeout.ms":    "6000",
			"group.consumer.heartbeat.interval.ms": "1000",
		}))
		if err != nil {
			return nil, fmt.Errorf("starting kfake: %w", err)
		}
		c.fake, c.seeds, c.script = fake, fake.ListenAddrs(), ""
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds...), kgo.MetadataMinAge(250*time.Millisecond))
	if err != nil {
		c.close()
		return nil, fmt.Errorf("creating the admin client: %w", err)
	}
	c.client, c.adm = cl, kadm.NewClient(cl)
	return c, nil
}

func (c *cluster) real() bool { return c.fake == nil }

func (c *cluster) close() {
	if c.client != nil {
		c.client.Close()
	}
	if c.fake != nil {
		c.fake.Close()
	}
}

// createTopic creates the source topic: replication factor 3 with min.insync.replicas=2 and no unclean
// election on the real cluster, a single replica on kfake.
func (c *cluster) createTopic(ctx context.Context, topic string, partitions int32) error {
	rf := int16(1)
	var configs map[string]*string
	if c.real() {
		rf = 3
		two, no := "2", "false"
		configs = map[string]*string{"min.insync.replicas": &two, "unclean.leader.election.enable": &no}
	}
	resp, err := c.adm.CreateTopic(ctx, partitions, rf, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("creating topic %s: %w", topic, err)
	}
	if c.real() {
		return c.waitInSync(ctx, topic)
	}
	return nil
}

// runScript runs cluster.sh with args.
func (c *cluster) runScript(ctx context.Context, args ...string) error {
	if c.script == "" {
		return errors.New("no cluster script to control Kafka nodes with")
	}
	ctx, cancel := context.WithTimeout(ctx, scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{c.script}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("running cluster.sh %v: %w: %s", args, err, tailString(string(out), 2000))
	}
	return nil
}

// waitInSync waits until every partition of topics has all its replicas in sync, so the next fault never
// stacks on a node that is still catching up.
func (c *cluster) waitInSync(ctx context.Context, topics ...string) error {
	ctx, cancel := context.WithTimeout(ctx, inSyncTimeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var state string
	for {
		details, err := c.adm.ListTopics(ctx, topics...)
		if err == nil {
			state = ""
			for _, t := range topics {
				d, ok := details[t]
				if !ok || d.Err != nil || len(d.Partitions) == 0 {
					state = fmt.Sprintf("topic %s has no metadata yet", t)
					break
				}
				for _, p := range d.Partitions.Sorted() {
					if p.Err != nil || p.Leader < 0 || len(p.ISR) < len(p.Replicas) {
						state = fmt.Sprintf("%s/%d: leader %d, isr %v of replicas %v", t, p.Partition, p.Leader, p.ISR, p.Replicas)
						break
					}
				}
				if state != "" {
					break
				}
			}
			if state == "" {
				return nil
			}
		} else {
			state = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for in-sync replicas: %s: %w", state, ctx.Err())
		case <-tick.C:
		}
	}
}

// behind lists the partitions of topics whose committed offset for group is short of the end, as
// "topic/partition committed/end".
func (c *cluster) behind(ctx context.Context, group string, topics []string) ([]string, error) {
	ends, err := c.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("listing end offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("listing end offsets: %w", err)
	}
	committed, err := c.adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("fetching the offsets of group %s: %w", group, err)
	}
	var out []string
	ends.Each(func(e kadm.ListedOffset) {
		at := int64(0)
		if o, ok := committed.Lookup(e.Topic, e.Partition); ok && o.Err == nil {
			at = o.At
		}
		if at < e.Offset {
			out = append(out, fmt.Sprintf("%s/%d %d/%d", e.Topic, e.Partition, at, e.Offset))
		}
	})
	sort.Strings(out)
	return out, nil
}

// produce writes one record per ID to topic with the ID in header, spreading them evenly over window so the
// faults meet records still arriving. The producer is idempotent with acks=all and retries without end, so
// it returns an error only when ctx ends.
func produce(ctx context.Context, seeds []string, topic, header string, ids []string, window time.Duration) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.MetadataMinAge(250*time.Millisecond), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return fmt.Errorf("creating the producer: %w", err)
	}
	defer cl.Close()
	const chunk = 250
	chunks := (len(ids) + chunk - 1) / chunk
	start := time.Now()
	for i := 0; i < chunks; i++ {
		// Pace by the schedule rather than by a fixed pause, so slow produces do not stretch the window.
		if wait := time.Until(start.Add(window * time.Duration(i) / time.Duration(max(chunks, 1)))); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("producing: %w", ctx.Err())
			case <-t.C:
			}
		}
		batch := ids[i*chunk : min((i+1)*chunk, len(ids))]
		recs := make([]*kgo.Record, len(batch))
		for j, id := range batch {
			recs[j] = &kgo.Record{
				Key:     []byte("key-" + strconv.Itoa(j%97)),
				Value:   []byte(`{"id":"` + id + `"}`),
				Headers: []kgo.RecordHeader{{Key: header, Value: []byte(id)}, {Key: "content-type", Value: []byte("application/json")}},
			}
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return fmt.Errorf("producing records %d..%d: %w", i*chunk, i*chunk+len(batch)-1, err)
		}
	}
	return nil
}

// dlqReader follows the dead-letter topic from its start and counts the copies per message ID (the
// sidecar-id header). Its methods are safe for concurrent use.
type dlqReader struct {
	cl *kgo.Client

	mu     sync.Mutex
	counts map[string]int
	next   map[int32]int64 // per partition, the offset after the last record read
	noID   int             // records without a sidecar-id header
}

func newDLQReader(seeds []string, topic string) (*dlqReader, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MetadataMinAge(250*time.Millisecond),
		kgo.MetadataMaxAge(time.Second))
	if err != nil {
		return nil, fmt.Errorf("creating the dead-letter reader: %w", err)
	}
	return &dlqReader{cl: cl, counts: map[string]int{}, next: map[int32]int64{}}, nil
}

// run reads until ctx ends; fetch errors (a broker down) are retried by the client.
func (r *dlqReader) run(ctx context.Context) {
	for ctx.Err() == nil {
		fs := r.cl.PollFetches(ctx)
		r.mu.Lock()
		fs.EachRecord(func(rec *kgo.Record) {
			id := ""
			for _, h := range rec.Headers {
				if h.Key == "sidecar-id" {
					id = string(h.Value)
				}
			}
			if id == "" {
				r.noID++
			} else {
				r.counts[id]++
			}
			r.next[rec.Partition] = rec.Offset + 1
		})
		r.mu.Unlock()
		if fs.NumRecords() == 0 && len(fs.Errors()) > 0 {
			// An error without records (the topic not created yet, a broker down) comes back at once;
			// pausing keeps the loop from spinning until the client's own retry succeeds.
			t := time.NewTimer(100 * time.Millisecond)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
}

// caughtUp reports whether every partition has been read up to its end offset in ends.
func (r *dlqReader) caughtUp(ends kadm.ListedOffsets, topic string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	ok := true
	ends.Each(func(e kadm.ListedOffset) {
		if e.Topic == topic && r.next[e.Partition] < e.Offset {
			ok = false
		}
	})
	return ok
}

// snapshot returns a copy of the counts per ID and the records without an ID.
func (r *dlqReader) snapshot() (map[string]int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.counts))
	for k, v := range r.counts {
		out[k] = v
	}
	return out, r.noID
}

func (r *dlqReader) close() { r.cl.Close() }

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
