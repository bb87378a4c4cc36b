package storage_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gregorbroker/gregor/storage"
)

// BenchmarkRecoveryAfterCrash measures Open after a crash (no clean-
// shutdown marker) of logs of several total sizes, with the recovery point
// leaving a given amount of data unflushed, or none known (0: the whole
// log is checked, as without a checkpoint). 16 MiB segments of 64 KiB
// batches; the files are in the page cache, so the figures are the CPU
// cost of the checks (CRC-32C of every byte past the recovery point) plus
// the fsyncs of the segments checked.
//
//	go test -run '^$' -bench RecoveryAfterCrash -benchtime 3x ./storage/
func BenchmarkRecoveryAfterCrash(b *testing.B) {
	const segBytes = 16 << 20
	for _, total := range []int64{256 << 20, 1 << 30} {
		dir := filepath.Join(b.TempDir(), "bench-0")
		cfg := storage.DefaultConfig()
		cfg.SegmentBytes = segBytes
		l, err := storage.Open(dir, cfg, storage.Options{})
		if err != nil {
			b.Fatal(err)
		}
		batch := batchOfSize(b, 64<<10)
		for l.Size() < total {
			if _, err := l.Append(batch, 0); err != nil {
				b.Fatal(err)
			}
		}
		leo := l.LogEndOffset()
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		for _, unflushed := range []int64{1 << 20, 16 << 20, 64 << 20, total} {
			rp := leo - leo*unflushed/total
			name := fmt.Sprintf("total=%dMiB/unflushed=%dMiB", total>>20, unflushed>>20)
			if unflushed == total {
				rp, name = 0, fmt.Sprintf("total=%dMiB/no-checkpoint", total>>20)
			}
			b.Run(name, func(b *testing.B) {
				var st storage.RecoveryStats
				for b.Loop() {
					b.StopTimer()
					if err := removeMarker(dir); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					l, err := storage.Open(dir, cfg, storage.Options{RecoveryPoint: rp})
					if err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					st = l.Recovery()
					if err := l.Close(); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				b.ReportMetric(float64(st.Bytes)/(1<<20), "MiB-checked")
				b.ReportMetric(float64(st.Segments), "segments-checked")
			})
		}
	}
}

// removeMarker makes a closed log look crashed.
func removeMarker(dir string) error { return os.Remove(filepath.Join(dir, storage.MarkerName)) }
