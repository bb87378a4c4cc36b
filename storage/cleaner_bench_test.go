package storage_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/gregorbroker/gregor/protocol"
	"github.com/gregorbroker/gregor/storage"
)

// BenchmarkClean measures the cleaner's throughput (MB/s of log read) on
// a log of 16 MiB of overwrites: 10,000 keys, 100-byte values, batches of
// 100 records, uncompressed and lz4, in 1 MiB segments; every record but
// the last of each key goes. `make bench` runs it.
func BenchmarkClean(b *testing.B) {
	for _, codec := range []protocol.Codec{protocol.CodecNone, protocol.CodecLz4} {
		b.Run(fmt.Sprint(codec), func(b *testing.B) {
			cfg := storage.DefaultConfig()
			cfg.SegmentBytes = 1 << 20
			const keys, valueSize = 10_000, 100
			value := make([]byte, valueSize)
			var batches [][]byte
			var logBytes int64
			for i := 0; logBytes < 16<<20; i++ {
				recs := make([]kv, 100)
				for j := range recs {
					v := string(value)
					recs[j] = kv{fmt.Sprintf("key-%06d", (i*100+j)%keys), &v}
				}
				batch := keyed(b, codec, 1_700_000_000_000, recs...)
				batches = append(batches, batch)
				logBytes += int64(len(batch))
			}
			b.SetBytes(logBytes)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				l, err := storage.Open(filepath.Join(b.TempDir(), fmt.Sprintf("bench-%d", i)), cfg, storage.Options{})
				if err != nil {
					b.Fatal(err)
				}
				appendAll(b, l, batches...)
				if _, err := l.Roll(); err != nil {
					b.Fatal(err)
				}
				l.SetHighWatermark(l.LogEndOffset())
				b.StartTimer()
				st, err := l.Clean(0, storage.CleanConfig{Codecs: testCodecs, DeleteRetentionMs: 86_400_000, MapBytes: 128 << 20})
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				if st.RecordsKept != keys {
					b.Fatalf("kept %d records, want %d", st.RecordsKept, keys)
				}
				_ = l.Close()
				b.StartTimer()
			}
		})
	}
}
