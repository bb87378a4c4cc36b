package storage_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gregorbroker/gregor/storage"
)

// fill appends n batches of varied sizes and timestamps.
func fill(t testing.TB, l *storage.Log, n int) []stored {
	t.Helper()
	var out []stored
	for i := range n {
		out = append(out, appendAll(t, l, makeBatch(t, batchSpec{
			records:   1 + i%3,
			firstTs:   int64(1000 + 10*i - 15*(i%4)),
			valueSize: 8 + 5*(i%7),
		}))...)
	}
	return out
}

// recoveryConfig makes several segments with index entries in each.
func recoveryConfig(interval int64) storage.Config {
	cfg := storage.DefaultConfig()
	cfg.SegmentBytes = 1200
	cfg.IndexIntervalBytes = interval
	return cfg
}

// checkIndexFiles compares every segment's index files with the rule, the
// active segment's time index having its closing entry when closed.
func checkIndexFiles(t *testing.T, e *env, bases []int64, all []stored, closed bool) {
	t.Helper()
	for i, base := range bases {
		var seg []stored
		for _, s := range all {
			if s.base >= base && (i == len(bases)-1 || s.base < bases[i+1]) {
				seg = append(seg, s)
			}
		}
		wantIdx, wantTime := expectedIndexes(base, seg, e.cfg.IndexIntervalBytes, closed || i < len(bases)-1)
		gotIdx := decodeIndex(t, readFile(t, e.path(segName(base, ".index"))))
		gotTime := decodeTimeIndex(t, readFile(t, e.path(segName(base, ".timeindex"))))
		if fmt.Sprint(gotIdx) != fmt.Sprint(wantIdx) || fmt.Sprint(gotTime) != fmt.Sprint(wantTime) {
			t.Fatalf("segment %d indexes\n got %v %v\nwant %v %v", base, gotIdx, gotTime, wantIdx, wantTime)
		}
	}
}

func TestReopenAfterClose(t *testing.T) {
	e := newEnv(t, recoveryConfig(200))
	l := e.open()
	want := fill(t, l, 40)
	bases := l.SegmentBases()
	if len(bases) < 3 {
		t.Fatalf("want several segments, have %v", bases)
	}
	leo := l.LogEndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got, w := string(readFile(t, e.path(storage.MarkerName))), fmt.Sprintf("gregor-clean-shutdown v1\nlog-end-offset: %d\n", leo); got != w {
		t.Fatalf("marker %q, want %q", got, w)
	}
	checkIndexFiles(t, e, bases, want, true)

	l = e.open()
	// The marker stays, still true, until the first change (marker_guard.go).
	if _, err := os.Stat(e.path(storage.MarkerName)); err != nil {
		t.Fatalf("marker gone after a clean Open, before any change: %v", err)
	}
	if l.LogEndOffset() != leo || l.HighWatermark() != leo || l.LogStartOffset() != 0 {
		t.Fatalf("leo %d hw %d start %d, want %d %d 0", l.LogEndOffset(), l.HighWatermark(), l.LogStartOffset(), leo, leo)
	}
	if fmt.Sprint(l.SegmentBases()) != fmt.Sprint(bases) {
		t.Fatalf("segments %v, want %v", l.SegmentBases(), bases)
	}
	checkLog(t, l, want)
	more := appendAll(t, l, simple(t, 2, 5000))
	if more[0].base != leo {
		t.Fatalf("append after reopen at %d, want %d", more[0].base, leo)
	}
	if _, err := os.Stat(e.path(storage.MarkerName)); !os.IsNotExist(err) {
		t.Fatalf("marker still there after an append: %v", err)
	}
	if warns := e.logs.atLevel(t, "warn"); len(warns) > 0 {
		t.Fatalf("clean reopen warned: %v", warns)
	}
}

func TestReopenAfterCrash(t *testing.T) {
	e := newEnv(t, recoveryConfig(200))
	l := e.open()
	want := fill(t, l, 40)
	bases := l.SegmentBases()
	l.Crash()
	if _, err := os.Stat(e.path(storage.MarkerName)); !os.IsNotExist(err) {
		t.Fatal("a crash left a clean-shutdown marker")
	}
	l = e.open()
	checkLog(t, l, want)
	if l.HighWatermark() != l.LogEndOffset() {
		t.Fatalf("hw %d, leo %d", l.HighWatermark(), l.LogEndOffset())
	}
	checkIndexFiles(t, e, bases, want, false)
	if warns := e.logs.atLevel(t, "warn"); len(warns) != 0 {
		t.Fatalf("nothing was torn, yet: %v", warns)
	}
	more := appendAll(t, l, simple(t, 1, 1))
	if more[0].base != want[len(want)-1].last+1 {
		t.Fatalf("append after recovery at %d", more[0].base)
	}
}

// tornScenario builds a crashed log whose last batch is to be damaged.
type tornScenario struct {
	name     string
	cfg      storage.Config
	batches  int
	lastSize int // value size of the last batch
}

func tornScenarios() []tornScenario {
	return []tornScenario{
		// Every batch but a segment's first has an index entry, so the
		// last one does too.
		{"indexed", recoveryConfig(0), 12, 30},
		// No index entries at all: the scan starts at position 0.
		{"unindexed", recoveryConfig(1 << 20), 12, 30},
		// The last batch is alone in its segment: with 600-byte
		// segments, any batch of more than 600 bytes is.
		{"alone", func() storage.Config { c := recoveryConfig(100); c.SegmentBytes = 250; return c }(), 12, 60},
		// One segment, with entries for the last few batches.
		{"one segment", func() storage.Config { c := recoveryConfig(0); c.SegmentBytes = 1 << 20; return c }(), 12, 30},
	}
}

// build makes the crashed log and returns a rig for it, the batches and
// the base offset of the last segment.
func (sc tornScenario) build(t *testing.T) (*rig, []stored, int64) {
	e := newEnv(t, sc.cfg)
	e.fs = &faultFS{noSync: true}
	l := e.open()
	want := fill(t, l, sc.batches-1)
	want = append(want, appendAll(t, l, makeBatch(t, batchSpec{records: 3, firstTs: 99_999, valueSize: sc.lastSize}))...)
	bases := l.SegmentBases()
	l.Crash()
	lastBase := bases[len(bases)-1]
	if sc.name == "alone" && lastBase != want[len(want)-1].base {
		t.Fatal("the last batch is not alone in its segment")
	}
	return newRig(t, e), want, lastBase
}

// rig reopens copies of a crashed log after damaging them. The copies
// reuse one directory: creating files is what costs most in these tests.
type rig struct {
	tmpl  *env
	files map[string][]byte
	work  string
}

func newRig(t *testing.T, tmpl *env) *rig {
	r := &rig{tmpl: tmpl, files: make(map[string][]byte), work: filepath.Join(t.TempDir(), "work")}
	ents, err := os.ReadDir(tmpl.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		r.files[ent.Name()] = readFile(t, tmpl.path(ent.Name()))
	}
	return r
}

// open restores the crashed log into the work directory, damages it and
// opens it.
func (r *rig) open(t *testing.T, damage func(e *env)) (*env, *storage.Log) {
	t.Helper()
	e := *r.tmpl
	e.logs = &logLines{}
	e.dir = r.work
	if err := os.MkdirAll(e.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if _, ok := r.files[ent.Name()]; !ok {
			if err := os.Remove(e.path(ent.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, b := range r.files {
		if cur, err := os.ReadFile(e.path(name)); err == nil && bytes.Equal(cur, b) {
			continue // rewriting costs more than comparing
		}
		writeFile(t, e.path(name), b)
	}
	damage(&e)
	l, err := e.tryOpen()
	if err != nil {
		t.Fatalf("open after damage: %v", err)
	}
	return &e, l
}

// checkRecoveredTo checks a damaged log recovered to want, then takes an
// append at the right offset and survives a clean reopen.
func checkRecoveredTo(t *testing.T, e *env, l *storage.Log, want []stored, lastBase int64) {
	t.Helper()
	defer l.Close()
	checkLog(t, l, want)
	leo := want[len(want)-1].last + 1
	if l.HighWatermark() != leo {
		t.Fatalf("hw %d, want %d", l.HighWatermark(), leo)
	}
	var size int64
	for _, s := range want {
		size += int64(len(s.bytes))
	}
	if l.Size() != size {
		t.Fatalf("Size %d, want %d", l.Size(), size)
	}
	checkIndexFiles(t, e, l.SegmentBases(), want, false)
	res, err := l.Append(simple(t, 2, 1), 0)
	if err != nil || res.BaseOffset != leo {
		t.Fatalf("append after recovery: %v at %d, want %d", err, res.BaseOffset, leo)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := e.tryOpen()
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.LogEndOffset() != leo+2 {
		t.Fatalf("leo after clean reopen %d, want %d", l2.LogEndOffset(), leo+2)
	}
}

// TestTruncateLastBatchAtEveryByte cuts the last segment at every byte of
// its last batch, as a crash mid-write would.
func TestTruncateLastBatchAtEveryByte(t *testing.T) {
	for _, sc := range tornScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			tmpl, want, lastBase := sc.build(t)
			last := want[len(want)-1]
			logSize := int64(len(tmpl.files[segName(lastBase, ".log")]))
			start := logSize - int64(len(last.bytes))
			for cut := start; cut < logSize; cut++ {
				e, l := tmpl.open(t, func(e *env) {
					editFile(t, e.path(segName(lastBase, ".log")), func(b []byte) []byte { return b[:cut] })
				})
				if cut > start {
					warns := e.logs.lines(t, "cut torn")
					if len(warns) != 1 {
						t.Fatalf("cut at %d: %d warnings, want 1", cut, len(warns))
					}
					w := warns[0]
					if w["level"] != "warn" || w["dir"] != e.dir || w["segment"] != float64(lastBase) ||
						w["position"] != float64(start) || w["bytes_dropped"] != float64(cut-start) || w["reason"] == "" {
						t.Fatalf("cut at %d: warning %v", cut, w)
					}
				}
				checkRecoveredTo(t, e, l, want[:len(want)-1], lastBase)
			}
		})
	}
}

// TestFlipByteInLastBatch flips every byte of the last batch: all but the
// leader epoch (outside the CRC, rewritten by Append anyway) are caught.
func TestFlipByteInLastBatch(t *testing.T) {
	for _, sc := range tornScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			tmpl, want, lastBase := sc.build(t)
			last := want[len(want)-1]
			logSize := len(tmpl.files[segName(lastBase, ".log")])
			start := logSize - len(last.bytes)
			for i := range len(last.bytes) {
				e, l := tmpl.open(t, func(e *env) {
					editFile(t, e.path(segName(lastBase, ".log")), func(b []byte) []byte {
						b[start+i] ^= 0x5a
						return b
					})
				})
				if i >= 12 && i < 16 {
					if l.LogEndOffset() != last.last+1 {
						t.Fatalf("flipping epoch byte %d dropped the batch", i)
					}
					l.Close()
					continue
				}
				if len(e.logs.lines(t, "cut torn")) != 1 {
					t.Fatalf("flip at %d: no warning", i)
				}
				checkRecoveredTo(t, e, l, want[:len(want)-1], lastBase)
			}
		})
	}
}

func TestGarbageAfterLastBatch(t *testing.T) {
	tmpl, want, lastBase := tornScenarios()[0].build(t)
	garbage := map[string][]byte{
		"one byte":      {0x42},
		"zeros":         make([]byte, 200),
		"ff header":     bytes.Repeat([]byte{0xff}, 61),
		"copy of batch": want[len(want)-1].bytes, // valid CRC, wrong offsets
		"header only":   want[len(want)-1].bytes[:61],
	}
	for name, g := range garbage {
		t.Run(name, func(t *testing.T) {
			e, l := tmpl.open(t, func(e *env) {
				editFile(t, e.path(segName(lastBase, ".log")), func(b []byte) []byte { return append(b, g...) })
			})
			warns := e.logs.lines(t, "cut torn")
			if len(warns) != 1 || warns[0]["bytes_dropped"] != float64(len(g)) {
				t.Fatalf("warnings %v", warns)
			}
			checkRecoveredTo(t, e, l, want, lastBase)
		})
	}
}

// TestMissingIndexesRebuilt deletes index files, after a clean close and
// after a crash.
func TestMissingIndexesRebuilt(t *testing.T) {
	for _, clean := range []bool{true, false} {
		t.Run(fmt.Sprintf("clean=%v", clean), func(t *testing.T) {
			e := newEnv(t, recoveryConfig(150))
			l := e.open()
			want := fill(t, l, 40)
			bases := l.SegmentBases()
			if clean {
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				// Segments below the recovery point are trusted, their
				// missing indexes rebuilt from headers; the last is
				// recovered.
				e.rp = bases[len(bases)-1]
				l.Crash()
			}
			last := bases[len(bases)-1]
			for _, name := range []string{segName(0, ".index"), segName(bases[1], ".timeindex"), segName(last, ".index"), segName(last, ".timeindex")} {
				if err := os.Remove(e.path(name)); err != nil {
					t.Fatal(err)
				}
			}
			l = e.open()
			if n := len(e.logs.lines(t, "rebuilding missing")); n < 2 {
				t.Fatalf("%d rebuild warnings, want at least 2", n)
			}
			// Rebuilt, the active segment's time index lacks the closing
			// entry a clean close wrote: it is active again.
			checkIndexFiles(t, e, bases, want, false)
			checkLog(t, l, want)
			for _, s := range want {
				b, _ := readBytes(t, l, s.last, 1, true, l.HighWatermark())
				if !bytes.Equal(b, s.bytes) {
					t.Fatalf("read at %d after rebuild found batch %d", s.last, baseOf(b))
				}
			}
			if ts, _ := l.MaxTimestamp(); ts <= 0 {
				t.Fatalf("MaxTimestamp %d after rebuild", ts)
			}
		})
	}
}

// TestUncleanIndexPastEnd: after a crash the index files may hold entries
// for batches the .log lost, a partial entry, or zeros.
func TestUncleanIndexPastEnd(t *testing.T) {
	tmpl, want, lastBase := tornScenarios()[3].build(t)
	keep, drop := want[:len(want)-3], want[len(want)-3:]
	if drop[0].base < lastBase {
		t.Fatal("the last segment has fewer than three batches")
	}
	dropBytes := 0
	for _, s := range drop {
		dropBytes += len(s.bytes)
	}
	if n := len(decodeIndex(t, tmpl.files[segName(lastBase, ".index")])); n < 3 {
		t.Fatalf("%d index entries in the last segment, want some for the dropped batches", n)
	}
	for name, junk := range map[string]struct{ idx, tidx []byte }{
		"entries past end":  {},
		"partial entries":   {idx: []byte{1, 2, 3}, tidx: []byte{0xff, 0xff, 0xff, 0xff, 0, 0}},
		"zeroed entries":    {idx: make([]byte, 32), tidx: make([]byte, 36)},
		"entries in future": {idx: []byte{0, 0, 1, 0, 0, 0, 1, 0}, tidx: []byte{0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}},
	} {
		t.Run(name, func(t *testing.T) {
			e, l := tmpl.open(t, func(e *env) {
				editFile(t, e.path(segName(lastBase, ".log")), func(b []byte) []byte { return b[:len(b)-dropBytes] })
				editFile(t, e.path(segName(lastBase, ".index")), func(b []byte) []byte { return append(b, junk.idx...) })
				editFile(t, e.path(segName(lastBase, ".timeindex")), func(b []byte) []byte { return append(b, junk.tidx...) })
			})
			if n := len(e.logs.lines(t, "cut torn")); n != 0 {
				t.Fatalf("%d cut warnings: the .log ended at a batch boundary", n)
			}
			checkRecoveredTo(t, e, l, keep, lastBase)
		})
	}
}

// TestMalformedIndexAfterCleanClose: the marker says trust the files, but
// an index is malformed; it is rebuilt.
func TestMalformedIndexAfterCleanClose(t *testing.T) {
	e := newEnv(t, recoveryConfig(150))
	l := e.open()
	want := fill(t, l, 40)
	bases := l.SegmentBases()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	p := e.path(segName(0, ".index"))
	idx := readFile(t, p)
	if len(idx) < 16 {
		t.Fatal("want two index entries in segment 0")
	}
	copy(idx[8:16], idx[0:8]) // two equal entries: out of order
	writeFile(t, p, idx)
	p = e.path(segName(bases[1], ".timeindex"))
	writeFile(t, p, append(readFile(t, p), 1, 2, 3)) // partial entry
	l = e.open()
	if n := len(e.logs.lines(t, "rebuilding malformed")); n != 2 {
		t.Fatalf("%d rebuild warnings, want 2", n)
	}
	checkIndexFiles(t, e, bases, want, true)
	checkLog(t, l, want)
}

func TestMarkerMismatchRecovers(t *testing.T) {
	for name, edit := range map[string]func(e *env, lastBase int64){
		"garbage after close": func(e *env, lastBase int64) {
			p := e.path(segName(lastBase, ".log"))
			writeFile(t, p, append(readFile(t, p), 1, 2, 3))
		},
		"wrong offset": func(e *env, _ int64) {
			writeFile(t, e.path(storage.MarkerName), []byte("gregor-clean-shutdown v1\nlog-end-offset: 3\n"))
		},
		"future version": func(e *env, _ int64) {
			writeFile(t, e.path(storage.MarkerName), []byte("gregor-clean-shutdown v2\nlog-end-offset: 0\n"))
		},
		"not a marker": func(e *env, _ int64) {
			writeFile(t, e.path(storage.MarkerName), []byte{0, 1, 2})
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, recoveryConfig(150))
			l := e.open()
			want := fill(t, l, 20)
			bases := l.SegmentBases()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			edit(e, bases[len(bases)-1])
			l = e.open()
			if n := len(e.logs.lines(t, "marker")); n != 1 {
				t.Fatalf("%d marker warnings, want 1", n)
			}
			checkLog(t, l, want)
			if _, err := os.Stat(e.path(storage.MarkerName)); !os.IsNotExist(err) {
				t.Fatal("marker left behind")
			}
		})
	}
}

func TestParseMarker(t *testing.T) {
	for _, c := range []struct {
		in   string
		leo  int64
		fail bool
	}{
		{"gregor-clean-shutdown v1\nlog-end-offset: 42\n", 42, false},
		{"gregor-clean-shutdown v1\nsome-future-key: x\nlog-end-offset: 7", 7, false},
		{"gregor-clean-shutdown v0\nlog-end-offset: 42\n", 0, true},
		{"gregor-clean-shutdown v2\nlog-end-offset: 42\n", 0, true},
		{"gregor-clean-shutdown v1\n", 0, true},
		{"gregor-clean-shutdown v1\nlog-end-offset: -1\n", 0, true},
		{"gregor-clean-shutdown v1\nlog-end-offset: x\n", 0, true},
		{"", 0, true},
		{"kafka\nlog-end-offset: 1\n", 0, true},
	} {
		leo, err := storage.ParseMarker([]byte(c.in))
		if (err != nil) != c.fail || (!c.fail && leo != c.leo) {
			t.Errorf("ParseMarker(%q) = %d, %v", c.in, leo, err)
		}
	}
}

// TestOrphanIndexRemoved: index files without a .log go at Open; other
// files stay.
func TestOrphanIndexRemoved(t *testing.T) {
	e := newEnv(t, storage.DefaultConfig())
	l := e.open()
	appendAll(t, l, simple(t, 1, 1))
	l.Close()
	writeFile(t, e.path(segName(500, ".index")), make([]byte, 8))
	writeFile(t, e.path(segName(500, ".timeindex")), nil)
	writeFile(t, e.path("partition.metadata"), []byte("version: 0\n"))
	writeFile(t, e.path(storage.MarkerName+".tmp"), []byte("half"))
	e.open()
	for name, exists := range map[string]bool{
		segName(500, ".index"): false, segName(500, ".timeindex"): false,
		"partition.metadata": true, storage.MarkerName + ".tmp": false,
	} {
		if _, err := os.Stat(e.path(name)); (err == nil) != exists {
			t.Errorf("%s: exists=%v, want %v", name, err == nil, exists)
		}
	}
}
