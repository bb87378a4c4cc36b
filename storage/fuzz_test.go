package storage_test

// FuzzRecover feeds arbitrary bytes to Open as a segment's .log, .index and
// .timeindex, with and without a clean-shutdown marker. Seeds live twice:
// in code (so `go test` runs them) and under testdata/fuzz/FuzzRecover/
// by name (so `go test -fuzz` starts from them). TestFuzzSeedFiles keeps
// them in step; after changing a seed run
//
//	go test ./storage -run TestFuzzSeedFiles -update-seeds

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gregorbroker/gregor/protocol"
	"github.com/gregorbroker/gregor/storage"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the named seed files under testdata/fuzz")

// fuzzLog is a valid .log of five batches (offsets 0-9) with its indexes
// at index.interval.bytes 0, made without the Log.
type fuzzLog struct {
	log, index, timeindex []byte
	leo                   int64
	maxTs                 []int64 // per batch
	bases                 []int64
}

func makeFuzzLog(t testing.TB) fuzzLog {
	var fl fuzzLog
	var off int64
	for i := range 5 {
		ts := int64(1000 + 100*i - 150*(i%2))
		b := makeBatch(t, batchSpec{records: 1 + i%3, firstTs: ts - 2, maxTs: ts, valueSize: 3})
		protocol.SetBaseOffset(b, off)
		last := off + int64(1+i%3) - 1
		if i > 0 {
			fl.index = binary.BigEndian.AppendUint32(fl.index, uint32(last))
			fl.index = binary.BigEndian.AppendUint32(fl.index, uint32(len(fl.log)))
		}
		fl.bases = append(fl.bases, off)
		fl.maxTs = append(fl.maxTs, ts)
		fl.log = append(fl.log, b...)
		off = last + 1
	}
	fl.leo = off
	// Timestamps 1000, 950, 1200, 1150, 1400: an entry with each offset
	// entry where the max has grown (batches 1, 2 and 4).
	fl.timeindex = binary.BigEndian.AppendUint64(fl.timeindex, 1000)
	fl.timeindex = binary.BigEndian.AppendUint32(fl.timeindex, 0)
	fl.timeindex = binary.BigEndian.AppendUint64(fl.timeindex, 1200)
	fl.timeindex = binary.BigEndian.AppendUint32(fl.timeindex, uint32(fl.bases[3]-1))
	fl.timeindex = binary.BigEndian.AppendUint64(fl.timeindex, 1400)
	fl.timeindex = binary.BigEndian.AppendUint32(fl.timeindex, uint32(fl.leo-1))
	return fl
}

type fuzzSeed struct {
	name string
	data []byte
}

func fuzzSeeds(t testing.TB) []fuzzSeed {
	fl := makeFuzzLog(t)
	one := fl.log[:protocol.BatchSize(fl.log)]
	garbage := []byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x7f}
	hugeLen := append([]byte(nil), one...)
	binary.BigEndian.PutUint32(hugeLen[8:], 0xffffffff)
	return []fuzzSeed{
		{"empty", nil},
		{"zero-length", []byte{0, 0, 0, 0}},
		{"length-ffffffff", []byte{0xff, 0xff, 0xff, 0xff}},
		{"batch", one},
		{"batch-garbage", append(append([]byte(nil), one...), garbage...)},
		{"batch-length-ffffffff", hugeLen},
		{"batches", fl.log},
		{"index", fl.index},
		{"timeindex", fl.timeindex},
	}
}

func TestFuzzSeedFiles(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzRecover")
	for _, s := range fuzzSeeds(t) {
		path := filepath.Join(dir, s.name)
		want := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", s.data)
		if *updateSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, want)
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v (run with -update-seeds)", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the seed in code (run with -update-seeds)", path)
		}
	}
}

func FuzzRecover(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s.data)
	}
	fl := makeFuzzLog(f)
	// fsync is slow and beside the point here, and so are 10 MiB index
	// files: each input opens twelve logs, and a slow input makes Go's
	// fuzzer report in rare, large batches (and, at the end of -fuzztime,
	// fail with "context deadline exceeded" while one is running).
	opts := storage.Options{FS: &faultFS{noSync: true}}
	cfg := storage.DefaultConfig()
	cfg.SegmentIndexBytes = 4096
	f.Fuzz(func(t *testing.T, data []byte) {
		// Go's fuzzer does not detect hangs: a watchdog turns one into a
		// crash, which saves the input.
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				panic(fmt.Sprintf("FuzzRecover: input of %d bytes still running after 20s: %q", len(data), data))
			}
		}()
		root := t.TempDir()
		marker := func(leo int64) []byte { return fmt.Appendf(nil, "gregor-clean-shutdown v1\nlog-end-offset: %d\n", leo) }
		scenarios := []struct {
			name                   string
			log, index, timeindex  []byte // nil: no such file
			marker                 []byte
			wantLEO                int64 // -1: whatever recovery finds
			checkCRC, wantBatchAll bool
			// exactTime: BatchAtTime must find the right batch. After a
			// clean shutdown a time index whose last entry checks out is
			// trusted, as Kafka trusts it, so garbage before that entry
			// can misdirect a lookup (to a later batch that still has a
			// large enough timestamp).
			exactTime bool
		}{
			{"log", data, nil, nil, nil, -1, true, false, false},
			{"log+marker", data, nil, nil, marker(int64(len(data) % 7)), -1, false, false, false},
			{"index", fl.log, data, fl.timeindex, nil, fl.leo, true, true, true},
			{"timeindex", fl.log, fl.index, data, nil, fl.leo, true, true, true},
			{"index+marker", fl.log, data, fl.timeindex, marker(fl.leo), fl.leo, true, true, true},
			{"timeindex+marker", fl.log, fl.index, data, marker(fl.leo), fl.leo, true, true, false},
		}
		for _, sc := range scenarios {
			dir := filepath.Join(root, sc.name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, b := range map[string][]byte{
				segName(0, ".log"): sc.log, segName(0, ".index"): sc.index, segName(0, ".timeindex"): sc.timeindex,
				storage.MarkerName: sc.marker,
			} {
				if b != nil {
					writeFile(t, filepath.Join(dir, name), b)
				}
			}
			l, err := storage.Open(dir, cfg, opts)
			if err != nil {
				t.Fatalf("%s: open: %v", sc.name, err)
			}
			leo := l.LogEndOffset()
			if sc.wantLEO >= 0 && leo != sc.wantLEO {
				t.Fatalf("%s: leo %d, want %d", sc.name, leo, sc.wantLEO)
			}
			if l.HighWatermark() != leo || l.LogStartOffset() != 0 {
				t.Fatalf("%s: hw %d start %d leo %d", sc.name, l.HighWatermark(), l.LogStartOffset(), leo)
			}
			checkReadable(t, sc.name, l, 0, leo, sc.checkCRC)
			if sc.wantBatchAll {
				if !bytes.Equal(readAllBytes(t, l), fl.log) {
					t.Fatalf("%s: the valid log changed", sc.name)
				}
				for ts := int64(900); ts <= 1500; ts += 50 {
					b, ok, err := l.BatchAtTime(ts)
					want := -1
					for i, m := range fl.maxTs {
						if m >= ts {
							want = i
							break
						}
					}
					if err != nil || ok != (want >= 0) && sc.exactTime || (ok && sc.exactTime && baseOf(b) != fl.bases[want]) {
						t.Fatalf("%s: BatchAtTime(%d) = %v, %v; want batch %d", sc.name, ts, ok, err, want)
					}
					if ok {
						if h, err := protocol.ParseBatchHeader(b); err != nil || h.MaxTimestamp < ts || !bytes.Contains(fl.log, b) {
							t.Fatalf("%s: BatchAtTime(%d) returned a batch that is not in the log or too old", sc.name, ts)
						}
					}
				}
				if ts, base := l.MaxTimestamp(); ts != 1400 || base != fl.bases[4] {
					t.Fatalf("%s: MaxTimestamp %d at %d", sc.name, ts, base)
				}
			}
			l.MaxTimestamp()
			if _, _, err := l.BatchAtTime(0); err != nil {
				t.Fatalf("%s: BatchAtTime: %v", sc.name, err)
			}
			// Appendable, and the append reads back.
			b := makeBatch(t, batchSpec{records: 2, firstTs: 5, valueSize: 1})
			res, err := l.Append(b, 0)
			if err != nil || res.BaseOffset != leo {
				t.Fatalf("%s: append: %v at %d, leo was %d", sc.name, err, res.BaseOffset, leo)
			}
			l.SetHighWatermark(res.LastOffset + 1)
			rr, err := l.Read(leo, 1<<20, true, res.LastOffset+1)
			if err != nil || rr.Size != int64(len(b)) {
				t.Fatalf("%s: read of the append: %v, %d bytes", sc.name, err, rr.Size)
			}
			if err := l.Close(); err != nil {
				t.Fatalf("%s: close: %v", sc.name, err)
			}
			l, err = storage.Open(dir, cfg, opts)
			if err != nil {
				t.Fatalf("%s: reopen: %v", sc.name, err)
			}
			if l.LogEndOffset() != res.LastOffset+1 {
				t.Fatalf("%s: leo %d after clean reopen, want %d", sc.name, l.LogEndOffset(), res.LastOffset+1)
			}
			checkReadable(t, sc.name, l, 0, l.LogEndOffset(), sc.checkCRC)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// readAllBytes reads the whole log.
func readAllBytes(t *testing.T, l *storage.Log) []byte {
	rr, err := l.Read(l.LogStartOffset(), 1<<40, true, l.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	for _, r := range rr.Ranges {
		if b, err = r.AppendTo(b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// checkReadable reads [from, leo) and checks the batches are whole and
// contiguous, and with checkCRC that their CRCs match.
func checkReadable(t *testing.T, name string, l *storage.Log, from, leo int64, checkCRC bool) {
	b := readAllBytes(t, l)
	next := from
	for len(b) > 0 {
		n := protocol.BatchSize(b)
		if n < protocol.BatchHeaderSize || n > len(b) {
			t.Fatalf("%s: batch of %d bytes with %d read", name, n, len(b))
		}
		h, err := protocol.ParseBatchHeader(b[:n])
		if err != nil || h.FirstOffset != next {
			t.Fatalf("%s: batch at %d: %v (base %d)", name, next, err, h.FirstOffset)
		}
		if checkCRC && uint32(h.CRC) != protocol.BatchCRC(b[:n]) {
			t.Fatalf("%s: batch at %d: bad CRC", name, next)
		}
		next += int64(h.LastOffsetDelta) + 1
		b = b[n:]
	}
	if next != leo {
		t.Fatalf("%s: batches end at %d, leo %d", name, next, leo)
	}
}
