package storage

import (
	"math"
	"time"

	"github.com/rs/zerolog"
)

// Config is the part of a topic's configuration the log acts on. Values
// are Kafka's; SetConfig replaces them on an open log.
type Config struct {
	SegmentBytes       int64 // segment.bytes (default 1 GiB)
	SegmentMs          int64 // segment.ms (default 7 days; 0 = never roll on time)
	SegmentIndexBytes  int64 // segment.index.bytes (default 10 MiB)
	IndexIntervalBytes int64 // index.interval.bytes (default 4096)
	// FlushMessages is flush.messages: Append fsyncs (sharing the fsync
	// with concurrent appends) once this many messages are unflushed.
	// <= 0 or math.MaxInt64 leaves flushing to the OS.
	FlushMessages int64
	// FlushMs is flush.ms: Append fsyncs when the oldest unflushed append is
	// this old (by Options.Now), and a timer fsyncs a log that stops
	// receiving appends FlushMs (wall time) after its first unflushed one.
	// <= 0 or math.MaxInt64 leaves flushing to the OS.
	FlushMs int64
	// FileDeleteDelayMs is file.delete.delay.ms: how long the files of a
	// segment DeleteSegmentsBelow removed stay open for readers that
	// already hold ranges of it (default 60 s; negative is 0).
	FileDeleteDelayMs int64
	// RetentionMs is retention.ms: EnforceRetention deletes a closed
	// segment whose largest timestamp is older than this (negative: no
	// limit; default 7 days).
	RetentionMs int64
	// RetentionBytes is retention.bytes: EnforceRetention deletes the
	// oldest closed segments while the log stays at least this large
	// without them (negative: no limit, the default).
	RetentionBytes int64
	// SegmentJitterMs is segment.jitter.ms: each segment rolls on time
	// after SegmentMs minus a random jitter in [0, SegmentJitterMs),
	// drawn when the segment is created (default 0).
	SegmentJitterMs int64
	// CompactionRollMs is, for a compacted log, max.compaction.lag.ms:
	// EnforceRetention rolls a non-empty active segment this old, so that
	// the cleaner (which cleans closed segments only) can honour the lag
	// in a partition that gets few writes (KIP-354). 0 (the default, and
	// for logs that are not compacted): never.
	CompactionRollMs int64
}

// Kafka's defaults.
const (
	defaultSegmentBytes       = 1 << 30
	defaultSegmentMs          = 7 * 24 * 60 * 60 * 1000
	defaultSegmentIndexBytes  = 10 << 20
	defaultIndexIntervalBytes = 4096
	defaultFileDeleteDelayMs  = 60000
	defaultRetentionMs        = 7 * 24 * 60 * 60 * 1000
)

// DefaultConfig returns Kafka's defaults, with flushing left to the OS.
func DefaultConfig() Config {
	return Config{
		SegmentBytes:       defaultSegmentBytes,
		SegmentMs:          defaultSegmentMs,
		SegmentIndexBytes:  defaultSegmentIndexBytes,
		IndexIntervalBytes: defaultIndexIntervalBytes,
		FlushMessages:      math.MaxInt64,
		FlushMs:            math.MaxInt64,
		FileDeleteDelayMs:  defaultFileDeleteDelayMs,
		RetentionMs:        defaultRetentionMs,
		RetentionBytes:     -1,
	}
}

// normalized returns c with values the log cannot honor replaced: sizes
// that are not positive become the default, and segments are capped at
// math.MaxInt32 bytes (as Kafka's int segment.bytes is) so that index
// positions fit in their 4 bytes.
func (c Config) normalized() Config {
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = defaultSegmentBytes
	}
	c.SegmentBytes = min(c.SegmentBytes, math.MaxInt32)
	c.SegmentMs = max(c.SegmentMs, 0)
	if c.SegmentIndexBytes <= 0 {
		c.SegmentIndexBytes = defaultSegmentIndexBytes
	}
	c.IndexIntervalBytes = max(c.IndexIntervalBytes, 0)
	c.FileDeleteDelayMs = max(c.FileDeleteDelayMs, 0)
	c.SegmentJitterMs = max(c.SegmentJitterMs, 0)
	return c
}

// flushMessages reports whether flush.messages asks for fsyncs.
func (c *Config) flushMessages() bool {
	return c.FlushMessages > 0 && c.FlushMessages != math.MaxInt64
}

// flushInterval returns flush.ms as a duration, or 0 when flushing on time
// is left to the OS (including values too large for a time.Duration).
func (c *Config) flushInterval() time.Duration {
	if c.FlushMs <= 0 || c.FlushMs > math.MaxInt64/int64(time.Millisecond) {
		return 0
	}
	return time.Duration(c.FlushMs) * time.Millisecond
}

// Options are the log's collaborators, fixed for its lifetime.
type Options struct {
	// Logger gets one line per event an operator cares about (a torn tail
	// cut at recovery, an index rebuilt, a failed fsync), debug lines for
	// rolls. The zero Logger discards.
	Logger zerolog.Logger
	// Now is the clock used for segment.ms and flush.ms; nil is time.Now.
	// The flush.ms background timer runs on wall time regardless.
	Now func() time.Time
	// FS is the filesystem; nil is OSFS{}.
	FS FS
	// LogStartOffset is the log start offset the data directory's
	// log-start-offset-checkpoint recorded for this log (0 when none).
	// Open starts the log there when it lies inside the log (at most the
	// log end offset); below the first segment's base it is ignored.
	LogStartOffset int64
	// RecoveryPoint is the log's entry in the recovery-point-offset-
	// checkpoint (Log.RecoveryPoint when it was written). After an
	// unclean shutdown, Open trusts the segments that end at or below it
	// and checks the rest; 0 (unknown) checks every segment.
	RecoveryPoint int64
	// OnTruncate, when set, is called after a truncation (TruncateTo, and
	// the start-over of StartAt and AppendReplica) with the log's
	// recovery point afterwards, under the append lock: nothing is
	// appended past the cut before it returns. The broker lowers its
	// recovery-point-offset-checkpoint entry there when the entry is
	// above the point, durably, as Kafka's LogManager.truncateTo does;
	// otherwise a crash after the truncated range was written again
	// would make Open trust segments that were never fsynced (doc.go,
	// Recovery point). An error fails the log (ErrStorage). It must not
	// call the log's methods that take the append lock.
	OnTruncate func(recoveryPoint int64) error
	// Files, when set, opens the segment files through this shared
	// descriptor cache (filecache.go): opened on demand, closed when
	// idle. Nil keeps them open for the log's life.
	Files *FileCache
}
