package storage_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/protocol"
	"github.com/gregorbroker/gregor/storage"
)

// batchSpec describes a test batch.
type batchSpec struct {
	records   int   // >= 1
	firstTs   int64 // first timestamp
	maxTs     int64 // max timestamp; 0 means firstTs+records-1
	valueSize int
}

// makeBatch builds a valid magic-2 batch with kmsg, CRC included. Record i
// has offset delta i and value bytes 'a'+i.
func makeBatch(t testing.TB, s batchSpec) []byte {
	t.Helper()
	if s.maxTs == 0 {
		s.maxTs = s.firstTs + int64(s.records) - 1
	}
	var recs []byte
	for i := range s.records {
		r := kmsg.Record{
			TimestampDelta64: min(int64(i), s.maxTs-s.firstTs),
			OffsetDelta:      int32(i),
			Value:            bytes.Repeat([]byte{byte('a' + i%26)}, s.valueSize),
		}
		if i == s.records-1 {
			r.TimestampDelta64 = s.maxTs - s.firstTs
		}
		r.Length = int32(len(r.AppendTo(nil)) - 1) // Length 0 took one varint byte
		recs = r.AppendTo(recs)
	}
	b := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                2,
		LastOffsetDelta:      int32(s.records - 1),
		FirstTimestamp:       s.firstTs,
		MaxTimestamp:         s.maxTs,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           int32(s.records),
		Records:              recs,
		Length:               int32(protocol.BatchHeaderSize - 12 + len(recs)),
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[17:], protocol.BatchCRC(raw))
	if _, err := protocol.CheckBatch(raw); err != nil {
		t.Fatalf("test batch is invalid: %v", err)
	}
	return raw
}

// simple returns a batch of n records with 10-byte values at timestamp ts.
func simple(t testing.TB, n int, ts int64) []byte {
	return makeBatch(t, batchSpec{records: n, firstTs: ts, valueSize: 10})
}

// stored is a batch as Append leaves it: with its base offset and epoch.
type stored struct {
	base, last int64
	bytes      []byte
}

// appendAll appends copies of batches and returns them as stored.
func appendAll(t testing.TB, l *storage.Log, batches ...[]byte) []stored {
	t.Helper()
	var out []stored
	for _, b := range batches {
		c := append([]byte(nil), b...)
		res, err := l.Append(c, 7)
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		out = append(out, stored{res.BaseOffset, res.LastOffset, c})
	}
	return out
}

// wantStored checks what Append did to a batch: base offset and epoch set,
// every other byte as given.
func wantStored(t testing.TB, orig []byte, s stored) {
	t.Helper()
	want := append([]byte(nil), orig...)
	protocol.SetBaseOffset(want, s.base)
	protocol.SetPartitionLeaderEpoch(want, 7)
	if !bytes.Equal(want, s.bytes) {
		t.Fatalf("batch at %d differs from what was appended", s.base)
	}
}

// readAll reads [from, maxOffset) in one Read and returns the bytes.
func readBytes(t testing.TB, l *storage.Log, from, maxBytes int64, minOne bool, maxOffset int64) ([]byte, storage.ReadResult) {
	t.Helper()
	rr, err := l.Read(from, maxBytes, minOne, maxOffset)
	if err != nil {
		t.Fatalf("read %d: %v", from, err)
	}
	var b []byte
	var n int64
	for _, r := range rr.Ranges {
		if b, err = r.AppendTo(b); err != nil {
			t.Fatal(err)
		}
		n += r.Len
	}
	if n != rr.Size || int64(len(b)) != rr.Size {
		t.Fatalf("ranges hold %d bytes, read %d, Size says %d", n, len(b), rr.Size)
	}
	return b, rr
}

// splitBatches splits concatenated batches.
func splitBatches(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		n := protocol.BatchSize(b)
		if n < protocol.BatchHeaderSize || n > len(b) {
			t.Fatalf("bad batch size %d with %d bytes left", n, len(b))
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// baseOf is a batch's base offset.
func baseOf(b []byte) int64 { return int64(binary.BigEndian.Uint64(b)) }

// checkLog reads the whole log and checks it is exactly want.
func checkLog(t testing.TB, l *storage.Log, want []stored) {
	t.Helper()
	if len(want) == 0 {
		if l.LogEndOffset() != l.LogStartOffset() {
			t.Fatalf("log end offset %d, want empty log at %d", l.LogEndOffset(), l.LogStartOffset())
		}
		return
	}
	if got, w := l.LogEndOffset(), want[len(want)-1].last+1; got != w {
		t.Fatalf("log end offset %d, want %d", got, w)
	}
	b, _ := readBytes(t, l, want[0].base, 1<<40, false, l.LogEndOffset())
	got := splitBatches(t, b)
	if len(got) != len(want) {
		t.Fatalf("read %d batches, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i].bytes) {
			t.Fatalf("batch %d (offset %d) differs", i, want[i].base)
		}
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logLines collects zerolog JSON lines.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *logLines) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// lines returns the decoded lines whose message contains msg.
func (w *logLines) lines(t testing.TB, msg string) []map[string]any {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(w.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if s, _ := m["message"].(string); strings.Contains(s, msg) {
			out = append(out, m)
		}
	}
	return out
}

// atLevel returns the lines logged at level.
func (w *logLines) atLevel(t testing.TB, level string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range w.lines(t, "") {
		if m["level"] == level {
			out = append(out, m)
		}
	}
	return out
}

// env opens logs in one directory with one config, clock and logger.
type env struct {
	t     testing.TB
	dir   string
	cfg   storage.Config
	clock *fakeClock
	logs  *logLines
	fs    storage.FS
	rp    int64 // Options.RecoveryPoint
	// onTruncate is Options.OnTruncate.
	onTruncate func(recoveryPoint int64) error
	// files is Options.Files: nil, or with GREGOR_TEST_FILE_CACHE=n set a
	// cache of n descriptors, so that every test also runs with segment
	// files closed and reopened under it.
	files *storage.FileCache
}

func newEnv(t testing.TB, cfg storage.Config) *env {
	e := &env{t: t, dir: filepath.Join(t.TempDir(), "orders-0"), cfg: cfg, clock: newFakeClock(), logs: &logLines{}}
	if n, err := strconv.Atoi(os.Getenv("GREGOR_TEST_FILE_CACHE")); err == nil {
		e.files = storage.NewFileCache(n, zerolog.Nop())
		t.Cleanup(e.files.Close)
	}
	return e
}

func (e *env) open() *storage.Log {
	e.t.Helper()
	l, err := e.tryOpen()
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = l.Close() })
	return l
}

func (e *env) tryOpen() (*storage.Log, error) {
	return storage.Open(e.dir, e.cfg, storage.Options{
		Logger:        zerolog.New(e.logs).Level(zerolog.DebugLevel),
		Now:           e.clock.Now,
		FS:            e.fs,
		RecoveryPoint: e.rp,
		Files:         e.files,
		OnTruncate:    e.onTruncate,
	})
}

// path names a file in the partition directory.
func (e *env) path(name string) string { return filepath.Join(e.dir, name) }

// segName is a segment file name.
func segName(base int64, suffix string) string { return fmt.Sprintf("%020d%s", base, suffix) }

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// editFile replaces a file's contents with fn of them.
func editFile(t testing.TB, path string, fn func([]byte) []byte) {
	t.Helper()
	writeFile(t, path, fn(readFile(t, path)))
}

// indexEntry and timeEntry are decoded index file entries.
type indexEntry struct{ rel, pos uint32 }
type timeEntry struct {
	ts  int64
	rel uint32
}

func decodeIndex(t testing.TB, b []byte) []indexEntry {
	t.Helper()
	if len(b)%8 != 0 {
		t.Fatalf("offset index of %d bytes holds a partial entry", len(b))
	}
	var out []indexEntry
	for ; len(b) > 0; b = b[8:] {
		out = append(out, indexEntry{binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])})
	}
	return out
}

func decodeTimeIndex(t testing.TB, b []byte) []timeEntry {
	t.Helper()
	if len(b)%12 != 0 {
		t.Fatalf("time index of %d bytes holds a partial entry", len(b))
	}
	var out []timeEntry
	for ; len(b) > 0; b = b[12:] {
		out = append(out, timeEntry{int64(binary.BigEndian.Uint64(b)), binary.BigEndian.Uint32(b[8:])})
	}
	return out
}

// faultFS wraps the OS filesystem: it counts fsyncs and can fail writes
// and fsyncs of .log files, and, through inject, any operation on any
// file: opens (EMFILE), writes of index files, renames, truncation,
// fsyncs of the directory.
type faultFS struct {
	mu        sync.Mutex
	logSyncs  int
	failSync  error  // returned by Sync of .log files when set
	failWrite error  // when set, WriteAt of .log files writes half and returns it
	noSync    bool   // Sync does nothing (fast crash tests; durability is not what they test)
	onLogSync func() // called (without mu) before each .log fsync
	// inject, when set, is asked before each operation: op is one of
	// the fault* names, name the file's (or the directory's) path. A
	// non-nil answer is the operation's error; a failing write writes
	// half its bytes first, as a full disk may.
	inject func(op, name string) error
}

// Operations faultFS.inject is asked about.
const (
	faultOpen     = "open"
	faultWrite    = "write"
	faultSync     = "sync" // of a file or, opened read-only, the directory
	faultTruncate = "truncate"
	faultRename   = "rename" // name is the old path
	faultRemove   = "remove"
)

// injected returns inject's answer for op on name (nil when no inject).
func (f *faultFS) injected(op, name string) error {
	f.mu.Lock()
	fn := f.inject
	f.mu.Unlock()
	if fn == nil {
		return nil
	}
	return fn(op, name)
}

func (f *faultFS) OpenFile(name string, flag int, perm fs.FileMode) (storage.File, error) {
	if err := f.injected(faultOpen, name); err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	file, err := storage.OSFS{}.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f, name: name, isLog: strings.HasSuffix(name, ".log")}, nil
}
func (f *faultFS) Remove(name string) error {
	if err := f.injected(faultRemove, name); err != nil {
		return err
	}
	return os.Remove(name)
}
func (f *faultFS) RemoveAll(path string) error { return os.RemoveAll(path) }
func (f *faultFS) Rename(o, n string) error {
	if err := f.injected(faultRename, o); err != nil {
		return &os.LinkError{Op: "rename", Old: o, New: n, Err: err}
	}
	return os.Rename(o, n)
}
func (f *faultFS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }
func (f *faultFS) MkdirAll(p string, perm fs.FileMode) error  { return os.MkdirAll(p, perm) }

func (f *faultFS) set(fn func(f *faultFS)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *faultFS) syncs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logSyncs
}

type faultFile struct {
	storage.File
	fs    *faultFS
	name  string
	isLog bool
}

func (f *faultFile) Sync() error {
	if err := f.fs.injected(faultSync, f.name); err != nil {
		return err
	}
	f.fs.mu.Lock()
	if f.isLog {
		f.fs.logSyncs++
	}
	err, noSync, hook := f.fs.failSync, f.fs.noSync, f.fs.onLogSync
	f.fs.mu.Unlock()
	if hook != nil && f.isLog {
		hook()
	}
	switch {
	case err != nil && f.isLog:
		return err
	case noSync:
		return nil
	}
	return f.File.Sync()
}

func (f *faultFile) WriteAt(b []byte, off int64) (int, error) {
	err := f.fs.injected(faultWrite, f.name)
	if err == nil && f.isLog {
		f.fs.mu.Lock()
		err = f.fs.failWrite
		f.fs.mu.Unlock()
	}
	if err != nil {
		n, _ := f.File.WriteAt(b[:len(b)/2], off)
		return n, err
	}
	return f.File.WriteAt(b, off)
}

func (f *faultFile) Truncate(size int64) error {
	if err := f.fs.injected(faultTruncate, f.name); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

var errInjected = errors.New("injected fault")

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
