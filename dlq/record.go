package dlq

import (
	"encoding/base64"
	"strconv"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/envelope"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Entry is a dead-letter record as `kafka-sidecar dlq list --output json` prints it, one per line. The
// JSON names are part of the user-facing contract.
type Entry struct {
	// DLQPartition and DLQOffset locate the record on the dead-letter topic (what --offsets selects).
	DLQPartition int32 `json:"dlq_partition"`
	DLQOffset    int64 `json:"dlq_offset"`
	// ID is the message ID.
	ID string `json:"id"`
	// OriginalTopic, OriginalPartition and OriginalOffset locate the record as first consumed.
	OriginalTopic     string `json:"original_topic"`
	OriginalPartition int32  `json:"original_partition"`
	OriginalOffset    int64  `json:"original_offset"`
	// Attempts counts delivery attempts across all tiers.
	Attempts int `json:"attempts"`
	// Status is the app's HTTP status for the last failure, "" when there was none (a timeout).
	Status string `json:"status"`
	// Error is the short reason for the last failure.
	Error string `json:"error"`
	// FailedAt is when the last failure happened; left out of the JSON when the record does not say.
	FailedAt time.Time `json:"failed_at,omitzero"`
	// Key is the record key: as is when it is printable ASCII, else base64 with KeyEncoding "base64".
	Key string `json:"key"`
	// KeyEncoding is "base64" when Key is base64, else empty and left out of the JSON.
	KeyEncoding string `json:"key_encoding,omitempty"`
	// DecodeError describes provenance headers that could not be parsed; the other fields still hold what
	// did parse. Empty and left out of the JSON for a well-formed record.
	DecodeError string `json:"decode_error,omitempty"`
}

// Decode reads a dead-letter record into an Entry. It never fails: a record with damaged provenance
// headers still decodes, with DecodeError saying what is wrong, so listing a topic never stops at one
// bad record.
func Decode(rec *kgo.Record) Entry {
	p, err := envelope.Parse(rec.Headers)
	e := Entry{
		DLQPartition:      rec.Partition,
		DLQOffset:         rec.Offset,
		ID:                p.ID,
		OriginalTopic:     p.OriginalTopic,
		OriginalPartition: p.OriginalPartition,
		OriginalOffset:    p.OriginalOffset,
		Attempts:          p.Attempts,
		Error:             p.Error,
		FailedAt:          p.FailedAt,
	}
	if p.ErrorStatus != 0 {
		e.Status = strconv.Itoa(p.ErrorStatus)
	}
	if printableASCII(rec.Key) {
		e.Key = string(rec.Key)
	} else {
		e.Key = base64.StdEncoding.EncodeToString(rec.Key)
		e.KeyEncoding = "base64"
	}
	if err != nil {
		e.DecodeError = err.Error()
	}
	return e
}

// printableASCII reports whether b is all printable ASCII, so it reads the same in JSON and a terminal.
func printableASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
