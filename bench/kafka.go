package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// recordBytes is the size of every record value.
const recordBytes = 200

// value builds a JSON document of exactly recordBytes bytes for record i.
func value(i int) []byte {
	head := `{"order":` + strconv.Itoa(i) + `,"pad":"`
	const tail = `"}`
	pad := recordBytes - len(head) - len(tail)
	if pad < 0 {
		pad = 0
	}
	return []byte(head + strings.Repeat("x", pad) + tail)
}

// valueFunc builds the value of record i.
type valueFunc func(i int) []byte

// record builds record i with one of keys keys; a nil value builds the JSON document.
func record(i, keys int, v valueFunc) *kgo.Record {
	if v == nil {
		v = value
	}
	return &kgo.Record{
		Key:     []byte("key-" + strconv.Itoa(i%keys)),
		Value:   v(i),
		Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}},
	}
}

// startKafka starts an in-process one-broker cluster with topic spread over partitions.
func startKafka(topic string, partitions int) (*kfake.Cluster, error) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(partitions), topic))
	if err != nil {
		return nil, fmt.Errorf("starting kfake: %w", err)
	}
	return c, nil
}

// preload produces n records to topic in chunks, so the producer's memory stays small.
func preload(ctx context.Context, seeds []string, topic string, n, keys int, v valueFunc) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(20000))
	if err != nil {
		return fmt.Errorf("creating the preload producer: %w", err)
	}
	defer cl.Close()
	const chunk = 10000
	recs := make([]*kgo.Record, 0, chunk)
	for start := 0; start < n; start += chunk {
		recs = recs[:0]
		for i := start; i < min(start+chunk, n); i++ {
			recs = append(recs, record(i, keys, v))
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return fmt.Errorf("preloading records: %w", err)
		}
	}
	return nil
}

// produceTail produces n records at rate per second, each stamped with its produce time, for latency.
func produceTail(ctx context.Context, seeds []string, topic string, n, rate, keys, offset int, v valueFunc) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(0))
	if err != nil {
		return fmt.Errorf("creating the tail producer: %w", err)
	}
	defer cl.Close()
	interval := time.Second / time.Duration(max(rate, 1))
	t := time.NewTicker(interval)
	defer t.Stop()
	errc := make(chan error, 1)
	for i := range n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("producing the latency tail: %w", ctx.Err())
		case err := <-errc:
			return err
		case <-t.C:
		}
		r := record(offset+i, keys, v)
		r.Timestamp = time.Now()
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errc <- fmt.Errorf("producing the latency tail: %w", err):
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("flushing the latency tail: %w", err)
	}
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}
