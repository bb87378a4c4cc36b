package storage_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/gregorbroker/gregor/storage"
)

// batchOfSize returns a one-record batch of about size bytes.
func batchOfSize(b *testing.B, size int) []byte {
	return makeBatch(b, batchSpec{records: 1, firstTs: 1, valueSize: max(size-70, 0)})
}

func openBench(b *testing.B, cfg storage.Config) *storage.Log {
	l, err := storage.Open(filepath.Join(b.TempDir(), "bench-0"), cfg, storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	return l
}

func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{100, 1 << 10, 16 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			cfg := storage.DefaultConfig()
			cfg.SegmentBytes = 64 << 20
			l := openBench(b, cfg)
			batch := batchOfSize(b, size)
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				// Append rewrites only the base offset and epoch, so the
				// same bytes can go again.
				if _, err := l.Append(batch, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendFsync appends from parallel goroutines with
// flush.messages=1; group commit shares the fsyncs.
func BenchmarkAppendFsync(b *testing.B) {
	for _, size := range []int{100, 1 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			cfg := storage.DefaultConfig()
			cfg.FlushMessages = 1
			l := openBench(b, cfg)
			proto := batchOfSize(b, size)
			b.SetBytes(int64(len(proto)))
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				batch := append([]byte(nil), proto...)
				for pb.Next() {
					if _, err := l.Append(batch, 0); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(l.SyncPasses())/float64(b.N), "fsyncs/op")
		})
	}
}

func BenchmarkRead(b *testing.B) {
	for _, c := range []struct {
		batch, maxBytes int
	}{{100, 64 << 10}, {1 << 10, 1 << 20}, {16 << 10, 1 << 20}} {
		b.Run(fmt.Sprintf("%dB-batches/%dKiB", c.batch, c.maxBytes>>10), func(b *testing.B) {
			cfg := storage.DefaultConfig()
			cfg.SegmentBytes = 8 << 20
			l := openBench(b, cfg)
			batch := batchOfSize(b, c.batch)
			for l.Size() < 32<<20 {
				if _, err := l.Append(batch, 0); err != nil {
					b.Fatal(err)
				}
			}
			leo := l.LogEndOffset()
			l.SetHighWatermark(leo)
			buf := make([]byte, 0, c.maxBytes+c.batch)
			var n int64
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				off := int64(i*7919) % leo
				rr, err := l.Read(off, int64(c.maxBytes), true, leo)
				if err != nil {
					b.Fatal(err)
				}
				buf = buf[:0]
				for _, r := range rr.Ranges {
					if buf, err = r.AppendTo(buf); err != nil {
						b.Fatal(err)
					}
				}
				n += rr.Size
			}
			b.SetBytes(n / int64(b.N))
		})
	}
}
