package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// post sends one record's body the way the sidecar does and checks for a 2xx.
func post(ctx context.Context, cl *http.Client, url string, body []byte, id string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", id)
	resp, err := cl.Do(req)
	if err != nil {
		return fmt.Errorf("posting to the app: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("posting to the app: status %d", resp.StatusCode)
	}
	return nil
}

func httpClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
			IdleConnTimeout: 90 * time.Second,
		},
	}
}

// runBare is the ceiling: a Go client posting n record bodies to the same app with conc requests at once.
// Its latency figures are the client's round trip.
func runBare(ctx context.Context, n, conc int, timeout time.Duration) (result, error) {
	res := result{Name: "bare HTTP", Records: n, Note: fmt.Sprintf("%d concurrent; latency is the round trip", conc)}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	a, err := startApp(0, false)
	if err != nil {
		return res, err
	}
	defer a.close()
	a.open()
	cl := httpClient(conc)
	defer cl.CloseIdleConnections()

	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		firstEr error
		rtts    = make([][]time.Duration, conc)
	)
	self0, err := processCPU(os.Getpid())
	if err != nil {
		return res, err
	}
	start := time.Now()
	for g := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				t := time.Now()
				if err := post(ctx, cl, a.url(), value(i), "orders/0/"+strconv.Itoa(i)); err != nil {
					errOnce.Do(func() { firstEr = err; cancel() })
					return
				}
				rtts[g] = append(rtts[g], time.Since(t))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	self1, err := processCPU(os.Getpid())
	if err != nil {
		return res, err
	}
	if firstEr != nil {
		return res, fmt.Errorf("bare HTTP: %w", firstEr)
	}
	res.BusyPercent = ptr(cpuSplit{self: self1 - self0}.busyPercent(elapsed))
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("bare HTTP: not done within %s", timeout)
	}
	var all []time.Duration
	for _, r := range rtts {
		all = append(all, r...)
	}
	res.Seconds = elapsed.Seconds()
	res.RecordsPerSec = float64(n) / elapsed.Seconds()
	res.P50Ms = ptr(millis(percentile(all, 0.50)))
	res.P99Ms = ptr(millis(percentile(all, 0.99)))
	return res, nil
}

// runNaive is the hand-written loop a sidecar replaces: for each record in turn, SET NX its ID in Redis, POST
// it, and commit its offset synchronously.
func runNaive(ctx context.Context, rs *redisServer, n, keys int, timeout time.Duration) (result, error) {
	res := result{Name: "naive", Records: n, Note: "sequential: SET NX + POST + sync commit per record"}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cluster, err := startKafka(topic, 12)
	if err != nil {
		return res, err
	}
	defer cluster.Close()
	if err := preload(ctx, cluster.ListenAddrs(), topic, n, keys, nil); err != nil {
		return res, err
	}
	if err := rs.flush(ctx); err != nil {
		return res, err
	}
	a, err := startApp(0, false)
	if err != nil {
		return res, err
	}
	defer a.close()
	a.open()
	hc := httpClient(1)
	defer hc.CloseIdleConnections()
	rc := rs.client()
	defer func() { _ = rc.Close() }()
	kc, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumerGroup("naive"),
		kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return res, fmt.Errorf("creating the naive consumer: %w", err)
	}
	defer kc.Close()

	done := 0
	var start time.Time
	for done < n {
		fetches := kc.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("naive: %d of %d records within %s", done, n, timeout)
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return res, fmt.Errorf("naive: fetching: %w", errs[0].Err)
		}
		if start.IsZero() {
			start = time.Now()
		}
		var loopErr error
		fetches.EachRecord(func(r *kgo.Record) {
			if loopErr != nil {
				return
			}
			id := r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10)
			set, err := rc.SetNX(ctx, "naive:"+id, "1", time.Hour).Result()
			if err != nil {
				loopErr = fmt.Errorf("naive: SET NX: %w", err)
				return
			}
			if set {
				if err := post(ctx, hc, a.url(), r.Value, id); err != nil {
					loopErr = fmt.Errorf("naive: %w", err)
					return
				}
			}
			if err := kc.CommitRecords(ctx, r); err != nil {
				loopErr = fmt.Errorf("naive: committing: %w", err)
				return
			}
			done++
		})
		if loopErr != nil {
			return res, loopErr
		}
	}
	if done < n {
		return res, errors.New("naive: stopped early")
	}
	elapsed := time.Since(start)
	res.Seconds = elapsed.Seconds()
	res.RecordsPerSec = float64(n) / elapsed.Seconds()
	return res, nil
}
