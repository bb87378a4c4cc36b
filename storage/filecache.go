package storage

// The descriptor cache: segment files opened on demand and closed when
// idle, so that a broker with 100,000 segments keeps a bounded number of
// descriptors open.
//
// A Log given Options.Files opens its segment files (.log, .index,
// .timeindex) through cachingFS, which hands out a cachedFile for each: a
// File that holds a descriptor only while it is in use or among the most
// recently used ones. Every operation takes the descriptor (opening the
// file again if it was closed), runs, and gives it back; an idle
// descriptor goes to the front of the cache's LRU list, and when more than
// the bound are open the least recently used idle ones are closed. A
// descriptor in use is never closed, so a reader in the middle of a pread
// is safe, and a FileRange handed out by Read reopens the file when it is
// read later: ranges stay readable until the log closes, as before.
//
// Writes and fsync: a descriptor with writes not yet fsynced is closed only
// after an fsync of its own (a writeback error reported on a closed
// descriptor would be lost to the next one, which Linux does not tell
// about errors from before it was opened). The cache's closer goroutine
// does that fsync for up to max evicted descriptors at a time; an fsync
// that fails there is kept and returned by the file's next Sync, which
// fails the log as any failed fsync does. Idle descriptors without
// unsynced writes are closed first. When the closer's queue is full (every
// partition written at once, faster than one goroutine fsyncs), the caller
// that evicts a dirty descriptor fsyncs and closes it itself, outside the
// cache's lock, before its operation returns: that may be an append
// holding its log's lock, which then waits for an fsync it did not ask
// for. This is the price of the bound; without it the dirty descriptors
// stayed open (8,895 with a bound of 256 when 10,000 partitions were
// written at once).
//
// The bound, exactly: Open() <= 2*max + W, where W is the number of
// goroutines inside an operation of a cached file (or opening one) at the
// moment. Under the cache's lock, after every operation at most max
// descriptors are open beyond those in use (each operation evicts until
// then), at most max more wait in the closer's queue or are being fsynced
// and closed by it, and each goroutine holds at most one descriptor in use
// or one victim it is closing itself (an operation adds at most one idle
// descriptor, so it evicts at most one).
//
// Reopening finds the same file: the first open records its identity
// (device and inode) and a reopen that finds another file under the name
// (a segment the cleaner swapped in) or none (a segment retention renamed
// to .deleted) tries the .deleted name, so a range of a deleted segment
// stays readable for file.delete.delay.ms, as it did with descriptors held
// open.

import (
	"container/list"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/gregorbroker/gregor/internal/safe"
)

// DefaultMaxOpenFiles is the default bound of a FileCache.
const DefaultMaxOpenFiles = 4096

// FileCache bounds the segment files open across the logs that share it
// (Options.Files). It is safe for concurrent use.
type FileCache struct {
	max int // descriptors kept open when idle; <= 0: no bound

	// mu protects idle, open, and every cachedFile's fields marked so.
	// No I/O is done under it: files are opened, fsynced and closed
	// outside.
	mu   sync.Mutex
	idle list.List // *cachedFile with a descriptor and no user, most recently used first
	open int       // descriptors held by cachedFiles

	// dirty holds evicted descriptors with unsynced writes, protected by
	// mu: the closer goroutine fsyncs and closes them, so that callers
	// (an append holding its log's lock) do not wait for an fsync they
	// did not ask for while the closer keeps up (see the file comment).
	// stopped says Close ran: evicting callers then do it themselves.
	dirty []victim
	// closing counts descriptors out of the cache but not closed yet,
	// other than those in dirty: taken by the closer, by an evicting
	// caller (a clean one, or a dirty one when the closer's queue was
	// full), or by a file's Close.
	closing int
	settled sync.Cond // on mu; broadcast when a dirty descriptor was fsynced and closed
	stopped bool
	wake    chan struct{} // cap 1: dirty has entries
	stop    chan struct{} // closed by Close
	wg      sync.WaitGroup
	log     zerolog.Logger

	opened atomic.Int64 // descriptors opened, ever (metrics, tests)
}

// NewFileCache returns a cache that keeps at most max descriptors open,
// beyond those in use at the moment and at most max more waiting for
// their fsync before they close (the exact bound is in filecache.go's
// comment; max <= 0: no bound). Close stops its goroutine.
func NewFileCache(max int, log zerolog.Logger) *FileCache {
	c := &FileCache{max: max, wake: make(chan struct{}, 1), stop: make(chan struct{}), log: log}
	c.settled.L = &c.mu
	safe.Go(&c.wg, log, "segment file closer", c.closer)
	return c
}

// Close stops the closer after it has closed what it holds. Close the
// logs first; files evicted afterwards are closed by the caller.
func (c *FileCache) Close() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	c.mu.Unlock()
	close(c.stop)
	c.wg.Wait()
	c.closeDirty()
}

// closer fsyncs and closes evicted dirty descriptors until Close.
func (c *FileCache) closer() {
	for {
		select {
		case <-c.stop:
			return
		case <-c.wake:
			c.closeDirty()
		}
	}
}

// closeDirty fsyncs and closes the dirty descriptors evicted so far.
func (c *FileCache) closeDirty() {
	c.mu.Lock()
	vs := c.dirty
	c.dirty = nil
	c.closing += len(vs)
	c.mu.Unlock()
	for _, v := range vs {
		c.settle(v)
	}
}

// settle fsyncs and closes an evicted dirty descriptor counted in
// c.closing and its file's pending, and records the fsync's outcome for
// the file's next Sync.
func (c *FileCache) settle(v victim) {
	err := v.f.Sync()
	c.mu.Lock()
	if err != nil && v.h.syncErr == nil {
		v.h.syncErr = fmt.Errorf("fsync before closing an idle descriptor of %s: %w", v.h.path, err)
	} else if err == nil && v.writes > v.h.synced {
		v.h.synced = v.writes
	}
	c.mu.Unlock()
	if err != nil {
		c.log.Error().Err(err).Str("file", v.h.path).Msg("fsync of an idle segment file failed; its log fails at its next fsync")
	}
	_ = v.f.Close()
	c.mu.Lock()
	c.closing--
	v.h.pending--
	c.settled.Broadcast()
	c.mu.Unlock()
}

// Open returns how many segment descriptors are open, those waiting for
// their fsync before they close included.
func (c *FileCache) Open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open + len(c.dirty) + c.closing
}

// Opened returns how many times a segment file was opened.
func (c *FileCache) Opened() int64 { return c.opened.Load() }

// cachingFS is an FS whose segment files are cachedFiles of c.
type cachingFS struct {
	FS
	c *FileCache
}

// OpenFile opens name; a segment file opened for writing comes back as a
// cachedFile holding the new descriptor.
func (f cachingFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if _, _, ok := parseSegmentName(filepath.Base(name)); !ok || flag&os.O_RDWR == 0 {
		return file, nil
	}
	h := &cachedFile{c: f.c, fs: f.FS, path: name, flag: flag &^ (os.O_CREATE | os.O_EXCL | os.O_TRUNC)}
	if fi, err := file.Stat(); err == nil && os.SameFile(fi, fi) {
		h.id = fi // comparable: the OS's
	}
	f.c.opened.Add(1)
	f.c.mu.Lock()
	h.f, h.users = file, 1
	f.c.open++
	f.c.mu.Unlock()
	h.release(false) // idle now, and the bound applies
	return h, nil
}

// cachedFile is a segment file opened on demand; see the file comment.
type cachedFile struct {
	c    *FileCache
	fs   FS
	path string
	flag int         // for reopening: the original flags without O_CREATE, O_EXCL, O_TRUNC
	id   fs.FileInfo // from the first open, to know the file again; nil when not comparable

	// Protected by c.mu.
	f       File          // the open descriptor, or nil
	users   int           // operations running on f
	elem    *list.Element // in c.idle while f != nil and users == 0
	closed  bool          // Close was called: no more opens
	writes  uint64        // writes and truncations done
	synced  uint64        // writes covered by a successful fsync
	syncErr error         // an fsync that failed when an idle descriptor was closed
	pending int           // evicted descriptors with unsynced writes not yet fsynced and closed
}

// victim is a descriptor taken out of the cache, to be closed outside c.mu.
type victim struct {
	h      *cachedFile
	f      File
	writes uint64 // writes to fsync first, when more than h.synced was
	dirty  bool
	// queued says the closer fsyncs and closes it (it is in c.dirty);
	// otherwise the evicting caller closes it (fsyncing it first when
	// dirty), counted in c.closing.
	queued bool
}

// acquire returns the descriptor, opening the file if needed, with a use
// counted; release gives it back.
func (h *cachedFile) acquire() (File, error) {
	c := h.c
	c.mu.Lock()
	if f, err := h.takeLocked(); f != nil || err != nil {
		c.mu.Unlock()
		return f, err
	}
	c.mu.Unlock()
	f, err := h.reopen()
	if err != nil {
		return nil, err
	}
	c.opened.Add(1)
	c.mu.Lock()
	if cur, err := h.takeLocked(); cur != nil || err != nil {
		// Opened by another user meanwhile (or closed): keep one.
		c.mu.Unlock()
		_ = f.Close()
		return cur, err
	}
	h.f, h.users = f, 1
	c.open++
	victims := c.evictLocked()
	c.mu.Unlock()
	c.closeVictims(victims)
	return f, nil
}

// takeLocked counts a use of the open descriptor, if there is one.
func (h *cachedFile) takeLocked() (File, error) {
	if h.closed {
		return nil, fmt.Errorf("storage: %s: %w", h.path, os.ErrClosed)
	}
	if h.f == nil {
		return nil, nil
	}
	h.users++
	if h.elem != nil {
		h.c.idle.Remove(h.elem)
		h.elem = nil
	}
	return h.f, nil
}

// release ends a use; wrote says it changed the file.
func (h *cachedFile) release(wrote bool) {
	c := h.c
	c.mu.Lock()
	if wrote {
		h.writes++
	}
	h.users--
	var last File
	if h.users == 0 {
		if h.closed {
			last, h.f = h.f, nil
			c.open--
			c.closing++ // until closed below
		} else {
			h.elem = c.idle.PushFront(h)
		}
	}
	victims := c.evictLocked()
	c.mu.Unlock()
	if last != nil {
		_ = last.Close() // Close already returned; nothing was written since its caller stopped
		c.mu.Lock()
		c.closing--
		c.mu.Unlock()
	}
	c.closeVictims(victims)
}

// evictLocked takes idle descriptors out while more than max are open,
// the least recently used without unsynced writes first (among the 64
// least recently used). A descriptor with unsynced writes goes to the
// closer's queue while it holds fewer than max (with those being closed);
// beyond that the caller fsyncs and closes it itself (closeVictims), so
// that the bound holds (see the file comment). Every victim stays counted,
// in c.dirty or c.closing, until it is closed.
func (c *FileCache) evictLocked() []victim {
	var out []victim
	for c.max > 0 && c.open > c.max && c.idle.Len() > 0 {
		var e *list.Element
		for i, cand := 0, c.idle.Back(); i < 64 && cand != nil; i, cand = i+1, cand.Prev() {
			h := cand.Value.(*cachedFile)
			if h.writes == h.synced {
				e = cand
				break
			}
			if e == nil {
				e = cand // the oldest dirty one, unless a clean one follows
			}
		}
		h := e.Value.(*cachedFile)
		c.idle.Remove(e)
		h.elem = nil
		v := victim{h: h, f: h.f, writes: h.writes, dirty: h.writes != h.synced}
		if v.dirty {
			// Counted as pending at once, under mu: a Sync of this file
			// from now on waits for the fsync of this descriptor (and
			// sees its error), never only for its own.
			h.pending++
			v.queued = len(c.dirty)+c.closing < c.max
		}
		if v.queued {
			c.dirty = append(c.dirty, v)
		} else {
			c.closing++
		}
		out = append(out, v)
		h.f = nil
		c.open--
	}
	return out
}

// closeVictims closes evicted descriptors: those without unsynced writes
// at once, dirty ones the closer's queue had no room for after their
// fsync (settle), here; it wakes the closer for the queued ones.
func (c *FileCache) closeVictims(vs []victim) {
	if len(vs) == 0 {
		return
	}
	queued, clean := false, 0
	for _, v := range vs {
		switch {
		case v.queued:
			queued = true
		case v.dirty:
			c.settle(v)
		default:
			_ = v.f.Close()
			clean++
		}
	}
	if clean > 0 {
		c.mu.Lock()
		c.closing -= clean
		c.mu.Unlock()
	}
	if !queued {
		return
	}
	c.mu.Lock()
	inline := c.stopped
	c.mu.Unlock()
	if inline {
		c.closeDirty()
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// reopen opens the file again, making sure it is the same file.
func (h *cachedFile) reopen() (File, error) {
	for _, p := range []string{h.path, h.path + deletedSuffix} {
		f, err := h.fs.OpenFile(p, h.flag, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("storage: reopen %s: %w", p, err)
		}
		if h.id != nil {
			if fi, err := f.Stat(); err != nil || !os.SameFile(h.id, fi) {
				_ = f.Close()
				continue
			}
		}
		return f, nil
	}
	return nil, fmt.Errorf("storage: reopen %s: the file is gone: %w", h.path, os.ErrNotExist)
}

// ReadAt reads at off.
func (h *cachedFile) ReadAt(b []byte, off int64) (int, error) {
	f, err := h.acquire()
	if err != nil {
		return 0, err
	}
	defer h.release(false)
	return f.ReadAt(b, off)
}

// WriteAt writes at off.
func (h *cachedFile) WriteAt(b []byte, off int64) (int, error) {
	f, err := h.acquire()
	if err != nil {
		return 0, err
	}
	defer h.release(true)
	return f.WriteAt(b, off)
}

// Truncate changes the size.
func (h *cachedFile) Truncate(size int64) error {
	f, err := h.acquire()
	if err != nil {
		return err
	}
	defer h.release(true)
	return f.Truncate(size)
}

// Stat describes the file.
func (h *cachedFile) Stat() (fs.FileInfo, error) {
	f, err := h.acquire()
	if err != nil {
		return nil, err
	}
	defer h.release(false)
	return f.Stat()
}

// Sync fsyncs the file; a failed fsync of a descriptor closed while idle
// is reported here, and by every later Sync.
func (h *cachedFile) Sync() error {
	f, err := h.acquire()
	if err != nil {
		return err
	}
	defer h.release(false)
	h.c.mu.Lock()
	// An fsync on this descriptor does not report a writeback error
	// that hit before it was opened: wait for the fsyncs of the
	// descriptors evicted before, which do.
	for h.pending > 0 {
		h.c.settled.Wait()
	}
	writes, serr := h.writes, h.syncErr
	h.c.mu.Unlock()
	if serr != nil {
		return serr
	}
	if err := f.Sync(); err != nil {
		return err
	}
	h.c.mu.Lock()
	if writes > h.synced {
		h.synced = writes
	}
	h.c.mu.Unlock()
	return nil
}

// Close closes the descriptor now, or when its last user is done. Later
// operations fail with os.ErrClosed.
func (h *cachedFile) Close() error {
	c := h.c
	c.mu.Lock()
	if h.closed {
		c.mu.Unlock()
		return nil
	}
	h.closed = true
	var f File
	if h.f != nil && h.users == 0 {
		if h.elem != nil {
			c.idle.Remove(h.elem)
			h.elem = nil
		}
		f, h.f = h.f, nil
		c.open--
		c.closing++ // until closed below
	}
	c.mu.Unlock()
	if f != nil {
		err := f.Close()
		c.mu.Lock()
		c.closing--
		c.mu.Unlock()
		return err
	}
	return nil
}
