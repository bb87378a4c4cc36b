package storage_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gregorbroker/gregor/storage"
)

// lazyFS is the OS filesystem with files that hold no descriptor: each
// operation opens the file, does its work and closes it. It lets a
// benchmark keep 10,000 logs open within the descriptor limit (each open
// log holds three descriptors otherwise); the work per operation is the
// same plus an open and a close. With noSync, fsyncs do nothing (for
// setting up logs fast when what is measured does not fsync).
type lazyFS struct {
	storage.OSFS
	noSync bool
}

type lazyFile struct {
	name   string
	noSync bool
}

func (l lazyFS) OpenFile(name string, flag int, perm fs.FileMode) (storage.File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &lazyFile{name: name, noSync: l.noSync}, f.Close()
}

func (f *lazyFile) with(flag int, fn func(*os.File) error) error {
	o, err := os.OpenFile(f.name, flag, 0)
	if err != nil {
		return err
	}
	err = fn(o)
	if cerr := o.Close(); err == nil {
		err = cerr
	}
	return err
}

func (f *lazyFile) ReadAt(b []byte, off int64) (n int, err error) {
	err = f.with(os.O_RDONLY, func(o *os.File) error { n, err = o.ReadAt(b, off); return err })
	return n, err
}

func (f *lazyFile) WriteAt(b []byte, off int64) (n int, err error) {
	err = f.with(os.O_WRONLY, func(o *os.File) error { n, err = o.WriteAt(b, off); return err })
	return n, err
}

func (f *lazyFile) Sync() error {
	if f.noSync {
		return nil
	}
	return f.with(os.O_RDONLY, func(o *os.File) error { return o.Sync() })
}
func (f *lazyFile) Truncate(size int64) error  { return os.Truncate(f.name, size) }
func (f *lazyFile) Stat() (fs.FileInfo, error) { return os.Stat(f.name) }
func (f *lazyFile) Close() error               { return nil }

// retentionLogs opens n logs of two closed segments and an active one
// each, with everything below the high watermark.
func retentionLogs(b *testing.B, n int, cfg storage.Config, fsys lazyFS) []*storage.Log {
	dir := b.TempDir()
	batch := simple(b, 1, time.Now().UnixMilli())
	logs := make([]*storage.Log, 0, n)
	for i := range n {
		l, err := storage.Open(filepath.Join(dir, fmt.Sprintf("t-%d", i)), cfg, storage.Options{FS: fsys})
		if err != nil {
			b.Fatal(err)
		}
		for range 3 {
			if _, err := l.Append(append([]byte(nil), batch...), 0); err != nil {
				b.Fatal(err)
			}
			if _, err := l.Roll(); err != nil {
				b.Fatal(err)
			}
		}
		l.SetHighWatermark(l.LogEndOffset())
		logs = append(logs, l)
	}
	b.Cleanup(func() {
		for _, l := range logs {
			_ = l.Close()
		}
	})
	return logs
}

// BenchmarkRetentionPass is one retention pass: "nothing-to-delete" over
// 10,000 partitions is the steady state (each log's oldest segment
// checked against retention.ms and retention.bytes); "delete-3-segments"
// over 1,000 partitions has every partition lose its three closed
// segments (per segment three renames; per partition a deletion intent
// and two directory fsyncs), so its ns/partition times 10,000 is the cost
// of such a pass over 10,000. "delete-1000-segments" is one DeleteRecords
// that takes 1,000 segments of one log at once, all under its append
// lock (ns/segment). Run it with -benchtime 1x (make bench does): setting
// up the logs takes longer than the passes.
func BenchmarkRetentionPass(b *testing.B) {
	cfg := storage.DefaultConfig()
	cfg.FileDeleteDelayMs = 0
	b.Run("nothing-to-delete", func(b *testing.B) {
		const partitions = 10_000
		logs := retentionLogs(b, partitions, cfg, lazyFS{noSync: true})
		now := time.Now()
		b.ResetTimer()
		for b.Loop() {
			for _, l := range logs {
				if res, err := l.EnforceRetention(now, true); err != nil || res.Segments != 0 {
					b.Fatalf("%+v, %v", res, err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/partitions, "ns/partition")
	})
	b.Run("delete-3-segments", func(b *testing.B) {
		const partitions = 1_000
		c := cfg
		logs := retentionLogs(b, partitions, c, lazyFS{})
		// Each log has 3 closed segments and an empty active one; with
		// retention.bytes 0 a pass deletes the three.
		c.RetentionBytes = 0
		c.RetentionMs = -1
		for _, l := range logs {
			l.SetConfig(c)
		}
		b.ResetTimer()
		deleted := 0
		for i := 0; b.Loop(); i++ {
			if i > 0 {
				b.StopTimer()
				for _, l := range logs { // refill: three more closed segments
					for range 3 {
						if _, err := l.Append(append([]byte(nil), simple(b, 1, 1)...), 0); err != nil {
							b.Fatal(err)
						}
						if _, err := l.Roll(); err != nil {
							b.Fatal(err)
						}
					}
					l.SetHighWatermark(l.LogEndOffset())
				}
				b.StartTimer()
			}
			for _, l := range logs {
				res, err := l.EnforceRetention(time.Now(), true)
				if err != nil {
					b.Fatal(err)
				}
				deleted += res.Segments
			}
		}
		b.ReportMetric(float64(deleted)/float64(b.N)/partitions, "segments/partition")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/partitions, "ns/partition")
	})
	b.Run("delete-1000-segments", func(b *testing.B) {
		const segments = 1_000
		l := retentionLogs(b, 1, cfg, lazyFS{})[0]
		fill := func() {
			for range segments {
				if _, err := l.Append(append([]byte(nil), simple(b, 1, 1)...), 0); err != nil {
					b.Fatal(err)
				}
				if _, err := l.Roll(); err != nil {
					b.Fatal(err)
				}
			}
			l.SetHighWatermark(l.LogEndOffset())
		}
		deleted := 0
		for b.Loop() {
			b.StopTimer()
			fill()
			b.StartTimer()
			n, err := l.DeleteSegmentsBelow(l.LogEndOffset())
			if err != nil {
				b.Fatal(err)
			}
			deleted += n
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(deleted), "ns/segment")
	})
}
