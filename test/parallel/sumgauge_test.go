package parallel

import (
	"bufio"
	"strings"
	"testing"
)

func TestSumGauge(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    float64
		wantErr bool
	}{
		{"labels", "# HELP x\nkafka_sidecar_buffered_records{topic=\"a\",partition=\"0\"} 3\nkafka_sidecar_buffered_records{topic=\"a\",partition=\"1\"} 4.5\n", 7.5, false},
		{"no labels", "kafka_sidecar_buffered_records 2\n", 2, false},
		{"other metric only", "kafka_sidecar_buffered_records_total 9\n", 0, true},
		{"bad value", "kafka_sidecar_buffered_records{} x\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sumGauge(bufio.NewScanner(strings.NewReader(tt.in)), "kafka_sidecar_buffered_records")
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("sum = %v, want %v", got, tt.want)
			}
		})
	}
}
