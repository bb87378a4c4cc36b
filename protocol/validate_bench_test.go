package protocol

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// benchBatches builds, for each record size, a batch of about 100 KiB
// in each codec.
func benchBatches(b *testing.B) []struct {
	name  string
	batch []byte
	raw   int // uncompressed size of the records section
} {
	c := NewCodecs()
	var out []struct {
		name  string
		batch []byte
		raw   int
	}
	for _, size := range []int{100, 1000} {
		recs := make([]kmsg.Record, 100_000/size)
		for i := range recs {
			recs[i].Key = []byte(fmt.Sprint("key-", i))
			recs[i].Value = testPayload(size, uint64(i))
			recs[i].Headers = []kmsg.Header{{Key: "trace", Value: []byte("abc")}}
			recs[i].TimestampDelta64 = int64(i)
		}
		plain := mustBuild(b, c, CodecNone, 1_700_000_000_000, recs)
		for _, codec := range append([]Codec{CodecNone}, allCodecs...) {
			out = append(out, struct {
				name  string
				batch []byte
				raw   int
			}{fmt.Sprintf("%dB/%s", size, codec), mustBuild(b, c, codec, 1_700_000_000_000, recs), len(plain) - BatchHeaderSize})
		}
	}
	return out
}

// BenchmarkValidateBatch measures produce-path validation of one batch;
// SetBytes is the uncompressed records size, so MB/s compare across
// codecs.
func BenchmarkValidateBatch(b *testing.B) {
	c := NewCodecs()
	for _, bb := range benchBatches(b) {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(bb.raw))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.ValidateProduceBatch(bb.batch, lenient); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkValidateBatchKmsg is the alternative the validator avoids:
// decoding every record into a kmsg.Record.
func BenchmarkValidateBatchKmsg(b *testing.B) {
	c := NewCodecs()
	for _, bb := range benchBatches(b) {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(bb.raw))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Records(bb.batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
