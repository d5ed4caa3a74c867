package e2e

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"
)

// BenchmarkPipeline measures the whole path — kfake, a real redis-server for dedup, and a local app that
// answers 200 at once — as records finished per second: each iteration preloads a fresh topic, starts the
// in-process sidecar, and stops the clock when every record is delivered. Run it with
//
//	go test -run='^$' -bench=Pipeline -benchtime=1x ./test/e2e/
func BenchmarkPipeline(b *testing.B) {
	for _, size := range []int{5000, 20000} {
		b.Run(fmt.Sprintf("records=%d", size), func(b *testing.B) {
			const partitions = 12
			s := newStack(b, partitions)
			s.app.lean.Store(true)
			var total int64
			var elapsed time.Duration
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				s.topic = uniqueName(b, "src")
				s.group = uniqueName(b, "g")
				s.kafka.createTopic(b, s.topic, partitions)
				s.kafka.produce(b, makeRecords(s.topic, partitions, size, fmt.Sprintf("b%d", i))...)
				b.StartTimer()

				start := time.Now()
				sc := startSidecarLogger(b, s.env("SIDECAR_LOG_LEVEL=error"), zap.NewNop())
				waitFor(b, 5*time.Minute, func() bool { return sc.sc.Metrics().Totals().Delivered == int64(size) },
					"%d records delivered", size)
				elapsed += time.Since(start)
				total += int64(size)

				b.StopTimer()
				sc.stop(b)
				b.StartTimer()
			}
			b.ReportMetric(float64(total)/elapsed.Seconds(), "records/s")
		})
	}
}
