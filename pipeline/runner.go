package pipeline

import (
	"sync"
	"sync/atomic"
)

// runner runs sets of records on goroutines it keeps, so that a record going on alone pays neither for a new
// goroutine nor for growing a fresh stack through its first delivery. A set goes to an idle goroutine when
// there is one and to a new goroutine otherwise, so sets never wait for each other (one may sleep through a
// backoff for seconds). At most maxIdle goroutines stay waiting for work; Close ends them.
type runner struct {
	tasks   chan []*record
	quit    chan struct{}
	idle    atomic.Int32
	maxIdle int32
	wg      sync.WaitGroup
	close   sync.Once
}

func newRunner(maxIdle int) *runner {
	return &runner{tasks: make(chan []*record), quit: make(chan struct{}), maxIdle: int32(max(maxIdle, 1))}
}

// run starts the engine on t at once.
func (r *runner) run(p *Pipeline, t []*record) {
	select {
	case r.tasks <- t:
	default:
		r.wg.Add(1)
		go r.loop(p, t)
	}
}

func (r *runner) loop(p *Pipeline, t []*record) {
	defer r.wg.Done()
	for {
		p.run(t)
		t = nil // nothing of the task may stay reachable while waiting
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
