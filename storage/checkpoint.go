package storage

// Offset checkpoint files: one per data directory per kind, as Kafka keeps
// them (log-start-offset-checkpoint, recovery-point-offset-checkpoint,
// cleaner-offset-checkpoint), in Kafka's own text format so that tools
// that read Kafka's data directories read Gregor's:
//
//	0                      version
//	3                      number of entries that follow
//	orders 0 1234567       topic, partition, offset (one space between)
//	orders 1 0
//	__consumer_offsets 7 42
//
// Lines end in "\n". A topic name never contains a space (Kafka's legal
// characters are [a-zA-Z0-9._-]). The file is replaced whole and durably
// (WriteOffsetCheckpoint: write .tmp, fsync, rename, fsync the directory),
// so a reader sees the old file or the new one, never a mix.
//
// Version rule: version 0 is Kafka's and the only one; a reader that meets
// another version refuses the file (ErrCheckpointVersion) and its caller
// falls back to what is always safe without it (a full recovery, the first
// segment's base offset as log start).

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Names of the per-data-directory checkpoint files, as Kafka names them.
const (
	LogStartOffsetCheckpoint    = "log-start-offset-checkpoint"
	RecoveryPointCheckpoint     = "recovery-point-offset-checkpoint"
	CleanerOffsetCheckpoint     = "cleaner-offset-checkpoint"
	checkpointVersion           = 0
	maxCheckpointFileBytes      = 64 << 20 // ~1M entries of long topic names
	maxCheckpointEntryLineBytes = 512      // a 249-byte topic, two numbers
)

// ErrCheckpointVersion: a checkpoint file of a version this Gregor does not
// read.
var ErrCheckpointVersion = errors.New("storage: checkpoint file of an unknown version")

// TopicPartition names one partition in a checkpoint.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// EncodeOffsetCheckpoint encodes offsets in the checkpoint format, entries
// sorted by topic and partition so the file is stable.
func EncodeOffsetCheckpoint(offsets map[TopicPartition]int64) []byte {
	keys := make([]TopicPartition, 0, len(offsets))
	for tp := range offsets {
		keys = append(keys, tp)
	}
	slices.SortFunc(keys, func(a, b TopicPartition) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition) - int(b.Partition)
	})
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d\n%d\n", checkpointVersion, len(keys))
	for _, tp := range keys {
		fmt.Fprintf(&b, "%s %d %d\n", tp.Topic, tp.Partition, offsets[tp])
	}
	return b.Bytes()
}

// DecodeOffsetCheckpoint parses a checkpoint file. Anything malformed (a
// count that does not match the lines, a bad number, a negative partition
// or offset, a topic listed twice) is an error: callers treat the whole
// file as absent.
func DecodeOffsetCheckpoint(data []byte) (map[TopicPartition]int64, error) {
	if len(data) > maxCheckpointFileBytes {
		return nil, fmt.Errorf("storage: checkpoint of %d bytes, more than %d", len(data), maxCheckpointFileBytes)
	}
	if len(data) == 0 || data[len(data)-1] != '\n' {
		return nil, errors.New("storage: checkpoint does not end in a newline")
	}
	lines := strings.Split(string(data[:len(data)-1]), "\n")
	if len(lines) < 2 {
		return nil, errors.New("storage: checkpoint lacks its version and count lines")
	}
	version, err := strconv.Atoi(lines[0])
	if err != nil {
		return nil, fmt.Errorf("storage: checkpoint version %q: %w", lines[0], err)
	}
	if version != checkpointVersion {
		return nil, fmt.Errorf("%w: version %d", ErrCheckpointVersion, version)
	}
	count, err := strconv.Atoi(lines[1])
	if err != nil || count < 0 {
		return nil, fmt.Errorf("storage: checkpoint count %q is not a count", lines[1])
	}
	entries := lines[2:]
	if count != len(entries) {
		return nil, fmt.Errorf("storage: checkpoint says %d entries and has %d", count, len(entries))
	}
	out := make(map[TopicPartition]int64, count)
	for i, line := range entries {
		if len(line) > maxCheckpointEntryLineBytes {
			return nil, fmt.Errorf("storage: checkpoint entry %d is %d bytes long", i, len(line))
		}
		fields := strings.Split(line, " ")
		if len(fields) != 3 || fields[0] == "" {
			return nil, fmt.Errorf("storage: checkpoint entry %d %q is not \"topic partition offset\"", i, line)
		}
		part, err := strconv.ParseInt(fields[1], 10, 32)
		if err != nil || part < 0 {
			return nil, fmt.Errorf("storage: checkpoint entry %d: partition %q", i, fields[1])
		}
		off, err := strconv.ParseInt(fields[2], 10, 64)
		if err != nil || off < 0 {
			return nil, fmt.Errorf("storage: checkpoint entry %d: offset %q", i, fields[2])
		}
		tp := TopicPartition{Topic: fields[0], Partition: int32(part)}
		if _, dup := out[tp]; dup {
			return nil, fmt.Errorf("storage: checkpoint lists %s-%d twice", tp.Topic, tp.Partition)
		}
		out[tp] = off
	}
	return out, nil
}

// ReadOffsetCheckpoint reads the checkpoint name in dir. A file that does
// not exist is an empty checkpoint, with ok false.
func ReadOffsetCheckpoint(fsys FS, dir, name string) (offsets map[TopicPartition]int64, ok bool, err error) {
	if fsys == nil {
		fsys = OSFS{}
	}
	data, err := readSmallFile(fsys, filepath.Join(dir, name), maxCheckpointFileBytes)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return map[TopicPartition]int64{}, false, nil
		}
		return nil, false, fmt.Errorf("storage: read %s: %w", name, err)
	}
	offsets, err = DecodeOffsetCheckpoint(data)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
	}
	return offsets, true, nil
}

// WriteOffsetCheckpoint replaces the checkpoint name in dir with offsets,
// durably.
func WriteOffsetCheckpoint(fsys FS, dir, name string, offsets map[TopicPartition]int64) error {
	if fsys == nil {
		fsys = OSFS{}
	}
	if err := writeFileAtomic(fsys, dir, filepath.Join(dir, name), EncodeOffsetCheckpoint(offsets)); err != nil {
		return fmt.Errorf("storage: checkpoint %s: %w", name, err)
	}
	return nil
}
