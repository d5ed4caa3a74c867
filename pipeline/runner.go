package pipeline

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/kafka-sidecar/kafka-sidecar/consumer"
)

// aloneTask is one record finishing on its own: finish runs under the job's context, then the ID is left
// locally (when held) and the job reported.
type aloneTask struct {
	job    consumer.Job
	idx    int
	report consumer.Report
	m      message
	held   bool
	finish func(ctx context.Context, m *message) error
}

// end returns what ends the task with err: leave the ID locally (when held), then report. It takes copies, so
// it may run after the task's goroutine moved on (a delivered record ends when its done mark is written).
func (t *aloneTask) end(p *Pipeline, err error) func() {
	held, id, report, idx := t.held, t.m.id, t.report, t.idx
	return func() {
		if held {
			p.leaveLocal(id)
		}
		report(err, idx)
	}
}

// runner runs tasks on goroutines it keeps, so that a record finishing on its own pays neither for a new
// goroutine nor for growing a fresh stack through its first delivery. A task goes to an idle goroutine when
// there is one and to a new goroutine otherwise, so tasks never wait for each other (one may sleep through a
// backoff for seconds). At most maxIdle goroutines stay waiting for work; Close ends them.
type runner struct {
	tasks   chan aloneTask
	quit    chan struct{}
	idle    atomic.Int32
	maxIdle int32
	wg      sync.WaitGroup
	close   sync.Once
}

func newRunner(maxIdle int) *runner {
	return &runner{tasks: make(chan aloneTask), quit: make(chan struct{}), maxIdle: int32(max(maxIdle, 1))}
}

// run starts t at once.
func (r *runner) run(p *Pipeline, t aloneTask) {
	select {
	case r.tasks <- t:
	default:
		r.wg.Add(1)
		go r.loop(p, t)
	}
}

func (r *runner) loop(p *Pipeline, t aloneTask) {
	defer r.wg.Done()
	for {
		t.m.finished = t.end(p, nil)
		if err := t.finish(t.job.Ctx, &t.m); !errors.Is(err, errFinishing) {
			t.end(p, err)()
		}
		t = aloneTask{} // nothing of the task may stay reachable while waiting
		if r.idle.Add(1) > r.maxIdle {
			r.idle.Add(-1)
			return
		}
		select {
		case t = <-r.tasks:
			r.idle.Add(-1)
		case <-r.quit:
			r.idle.Add(-1)
			return
		}
	}
}

// Close ends the waiting goroutines and waits for the busy ones to finish their tasks.
func (r *runner) Close() {
	r.close.Do(func() { close(r.quit) })
	r.wg.Wait()
}
