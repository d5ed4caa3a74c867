package dlq

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/envelope"
	"github.com/twmb/franz-go/pkg/kgo"
)

// memMarks is an in-memory Marks for decision tests.
type memMarks struct {
	pos   map[string]bool
	count map[string]int
	err   error
}

func newMemMarks() *memMarks { return &memMarks{pos: map[string]bool{}, count: map[string]int{}} }

func (m *memMarks) Replayed(_ context.Context, pos string) (bool, error) { return m.pos[pos], m.err }
func (m *memMarks) Count(_ context.Context, id string) (int, error)      { return m.count[id], m.err }
func (m *memMarks) Mark(_ context.Context, pos, id string) error {
	if m.err != nil {
		return m.err
	}
	if !m.pos[pos] {
		m.pos[pos] = true
		m.count[id]++
	}
	return nil
}

// recordingSender keeps what it was asked to send, failing with err when set.
type recordingSender struct {
	sent []*kgo.Record
	err  error
}

func (s *recordingSender) Send(_ context.Context, rec *kgo.Record) error {
	if s.err != nil {
		return s.err
	}
	s.sent = append(s.sent, rec)
	return nil
}

func deadLetterAt(t *testing.T, offset int64, extra ...kgo.RecordHeader) Scanned {
	t.Helper()
	src := &kgo.Record{Topic: "orders", Partition: 1, Offset: 40, Key: []byte("k"), Value: []byte("v"),
		Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}}}
	rec := envelope.DeadLetter(src, envelope.Provenance{ID: "orders/1/40", OriginalTopic: "orders", OriginalPartition: 1,
		OriginalOffset: 40, Group: "g", Attempts: 3, Error: "http 422: bad", ErrorStatus: 422}, "orders.g.dlq")
	rec.Partition, rec.Offset = 1, offset
	rec.Headers = append(rec.Headers, extra...)
	return Scanned{Record: rec, Entry: Decode(rec)}
}

func TestReplayRecord(t *testing.T) {
	s := deadLetterAt(t, 9)
	prov, err := envelope.Parse(s.Record.Headers)
	if err != nil {
		t.Fatalf("parsing the dead letter: %v", err)
	}
	rec, err := ReplayRecord(s.Record, prov, 2)
	if err != nil {
		t.Fatalf("ReplayRecord: %v", err)
	}
	if rec.Topic != "orders" || rec.Partition != 1 || string(rec.Key) != "k" || string(rec.Value) != "v" {
		t.Fatalf("replay goes to %s/%d with key %q value %q, want orders/1 k v", rec.Topic, rec.Partition, rec.Key, rec.Value)
	}
	back, err := envelope.Parse(rec.Headers)
	if err != nil {
		t.Fatalf("parsing the replay's headers: %v", err)
	}
	if back.ID != "orders/1/40" || back.OriginalOffset != 40 || back.Attempts != 3 || back.Group != "g" {
		t.Fatalf("replay provenance = %+v, want the dead letter's identity", back)
	}
	if back.Error != "" || back.ErrorStatus != 0 || !back.FailedAt.IsZero() || !back.NotBefore.IsZero() {
		t.Fatalf("replay still carries the failure: %+v", back)
	}
	if !envelope.IsReplay(rec.Headers) || envelope.ReplayCount(rec.Headers) != 2 {
		t.Fatalf("envelope.IsReplay = %v, envelope.ReplayCount = %d; want true, 2", envelope.IsReplay(rec.Headers), envelope.ReplayCount(rec.Headers))
	}
	own := envelope.Strip(rec.Headers)
	if len(own) != 1 || own[0].Key != "content-type" {
		t.Fatalf("own headers of the replay = %v, want the one content-type", own)
	}
	for _, h := range rec.Headers {
		if h.Key == envelope.HeaderReplayedFrom && string(h.Value) != "orders.g.dlq/1/9" {
			t.Fatalf("%s = %q, want orders.g.dlq/1/9", envelope.HeaderReplayedFrom, h.Value)
		}
	}
	if _, err := ReplayRecord(s.Record, envelope.Provenance{ID: "x"}, 1); err == nil {
		t.Fatal("ReplayRecord without an original topic succeeded")
	}
}

func TestReplayCountHeader(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   int
	}{
		{"absent", nil, 0},
		{"one", []string{"3"}, 3},
		{"last wins", []string{"1", "4"}, 4},
		{"malformed", []string{"x"}, 0},
		{"negative", []string{"-2"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hs []kgo.RecordHeader
			for _, v := range tt.values {
				hs = append(hs, kgo.RecordHeader{Key: envelope.HeaderReplayCount, Value: []byte(v)})
			}
			if got := envelope.ReplayCount(hs); got != tt.want {
				t.Fatalf("envelope.ReplayCount = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestReplayDecisions(t *testing.T) {
	ctx := context.Background()
	const pos = "orders.g.dlq/1/5"
	tests := []struct {
		name       string
		opts       ReplayOptions
		marks      func(*memMarks)
		extra      []kgo.RecordHeader
		damaged    bool
		wantAction Action
		wantCount  int
		wantSent   int
	}{
		{name: "first replay", wantAction: Sent, wantCount: 1, wantSent: 1},
		{name: "dry run sends nothing", opts: ReplayOptions{DryRun: true}, wantAction: WouldSend, wantCount: 1},
		{name: "already replayed", marks: func(m *memMarks) { m.pos[pos] = true; m.count["orders/1/40"] = 1 },
			wantAction: AlreadyReplayed, wantCount: 1},
		{name: "count from marks stops it", marks: func(m *memMarks) { m.count["orders/1/40"] = 1 },
			wantAction: Refused, wantCount: 1},
		{name: "count below a higher limit", opts: ReplayOptions{MaxReplays: 3},
			marks: func(m *memMarks) { m.count["orders/1/40"] = 2 }, wantAction: Sent, wantCount: 3, wantSent: 1},
		{name: "count from the header stops it", extra: []kgo.RecordHeader{{Key: envelope.HeaderReplayCount, Value: []byte("1")}},
			wantAction: Refused, wantCount: 1},
		{name: "record without provenance", damaged: true, wantAction: Refused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			marks := newMemMarks()
			if tt.marks != nil {
				tt.marks(marks)
			}
			sender := &recordingSender{}
			opts := tt.opts
			opts.Sender, opts.Marks = sender, marks
			r, err := NewReplayer(opts)
			if err != nil {
				t.Fatalf("NewReplayer: %v", err)
			}
			s := deadLetterAt(t, 5, tt.extra...)
			if tt.damaged {
				s.Record.Headers = envelope.Strip(s.Record.Headers)
			}
			res, err := r.Replay(ctx, s)
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			if res.Action != tt.wantAction || res.Count != tt.wantCount || len(sender.sent) != tt.wantSent {
				t.Fatalf("Replay = %s count %d (%s), sent %d; want %s count %d, sent %d",
					res.Action, res.Count, res.Reason, len(sender.sent), tt.wantAction, tt.wantCount, tt.wantSent)
			}
			if res.Action == Refused && res.Reason == "" {
				t.Fatal("refusal without a reason")
			}
			marked := marks.pos[pos]
			if wantMarked := tt.wantAction == Sent || tt.wantAction == AlreadyReplayed; marked != wantMarked {
				t.Fatalf("position marked = %v, want %v", marked, wantMarked)
			}
		})
	}
}

func TestReplayFailures(t *testing.T) {
	ctx := context.Background()
	t.Run("send fails: not marked", func(t *testing.T) {
		marks := newMemMarks()
		boom := errors.New("broker gone")
		r, err := NewReplayer(ReplayOptions{Sender: &recordingSender{err: boom}, Marks: marks})
		if err != nil {
			t.Fatalf("NewReplayer: %v", err)
		}
		if _, err := r.Replay(ctx, deadLetterAt(t, 5)); !errors.Is(err, boom) {
			t.Fatalf("Replay error = %v, want the send error", err)
		}
		if len(marks.pos) != 0 || len(marks.count) != 0 {
			t.Fatalf("marks written although nothing was acknowledged: %v %v", marks.pos, marks.count)
		}
	})
	t.Run("marks unreadable: nothing sent", func(t *testing.T) {
		marks := newMemMarks()
		marks.err = errors.New("redis down")
		sender := &recordingSender{}
		r, err := NewReplayer(ReplayOptions{Sender: sender, Marks: marks})
		if err != nil {
			t.Fatalf("NewReplayer: %v", err)
		}
		if _, err := r.Replay(ctx, deadLetterAt(t, 5)); err == nil || len(sender.sent) != 0 {
			t.Fatalf("Replay = %v with %d sent, want an error and nothing sent", err, len(sender.sent))
		}
	})
	t.Run("no sender", func(t *testing.T) {
		if _, err := NewReplayer(ReplayOptions{}); err == nil {
			t.Fatal("NewReplayer without a sender succeeded")
		}
	})
}

func TestTokenBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newTokenBucket(4, func() time.Time { return now }) // one token per 250ms
	want := []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond}
	for i, w := range want {
		if got := b.reserve(); got != w {
			t.Fatalf("reserve %d = %v, want %v", i, got, w)
		}
	}
	// Idle time does not pile up tokens: after a long pause the next one is free and the one after waits.
	now = now.Add(time.Hour)
	for i, w := range []time.Duration{0, 250 * time.Millisecond} {
		if got := b.reserve(); got != w {
			t.Fatalf("after idle, reserve %d = %v, want %v", i, got, w)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := newTokenBucket(0.001, time.Now).wait(ctx); err == nil {
		t.Fatal("wait on an ended context returned nil")
	}
}

func BenchmarkReplayRecord(b *testing.B) {
	src := &kgo.Record{Topic: "orders", Partition: 1, Offset: 40, Key: []byte("k"), Value: make([]byte, 512)}
	p := envelope.Provenance{ID: "orders/1/40", OriginalTopic: "orders", OriginalPartition: 1, OriginalOffset: 40,
		Group: "g", Attempts: 3, Error: "http 500", ErrorStatus: 500, FailedAt: time.Unix(1_700_000_000, 0)}
	dl := envelope.DeadLetter(src, p, "orders.g.dlq")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := ReplayRecord(dl, p, i%5+1); err != nil {
			b.Fatal(err)
		}
	}
}
