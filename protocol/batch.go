// Record batches (magic 2), the unit Gregor stores and serves.
//
// A batch is kmsg.RecordBatch on the wire and on disk, byte for byte:
//
//	offset  width  field
//	0       8      base offset            (set by the broker on append; not covered by CRC)
//	8       4      batch length           (bytes after this field)
//	12      4      partition leader epoch (set by the broker; not covered by CRC)
//	16      1      magic                  (must be 2)
//	17      4      CRC-32C                (Castagnoli, over bytes 21..end)
//	21      2      attributes             (bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control, 6 delete horizon)
//	23      4      last offset delta
//	27      8      base timestamp         (the delete horizon when bit 6 is set; see filter.go)
//	35      8      max timestamp
//	43      8      producer id
//	51      2      producer epoch
//	53      4      base sequence
//	57      4      record count
//	61      ...    records (compressed as a whole when codec != 0)
//
// On the produce path Gregor validates a batch as Kafka does (validate.go:
// header, CRC, and every record, compressed ones decompressed as a stream
// and not kept), patches the base offset and leader epoch (and the max
// timestamp: the broker's for LogAppendTime, with the timestamp-type bit,
// or the largest record timestamp for CreateTime, recomputing the CRC),
// and writes the records as they came.
package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// BatchHeaderSize is the size of a magic-2 record batch header; the records follow it.
const BatchHeaderSize = 61

// batchLengthOverhead is the number of header bytes counted by the batch length field.
const batchLengthOverhead = BatchHeaderSize - 12

// Attribute bits of a record batch.
const (
	AttrCompressionMask = 0x07
	AttrLogAppendTime   = 0x08
	AttrTransactional   = 0x10
	AttrControl         = 0x20
	// AttrDeleteHorizon (KIP-534, Kafka's hasDeleteHorizonMs) says the
	// base timestamp field holds the batch's delete horizon: the log
	// cleaner set it, and the record timestamp deltas are relative to it.
	AttrDeleteHorizon = 0x40
)

// Codec is a record batch compression codec, as stored in attributes bits 0-2.
type Codec int8

// The codecs Kafka defines.
const (
	CodecNone   Codec = 0
	CodecGzip   Codec = 1
	CodecSnappy Codec = 2
	CodecLz4    Codec = 3
	CodecZstd   Codec = 4
)

// Errors returned by batch validation; the broker maps them to Kafka codes.
var (
	// ErrCorruptBatch means the batch is truncated, its length field is
	// inconsistent, its CRC does not match or its compressed records do
	// not decompress (CORRUPT_MESSAGE).
	ErrCorruptBatch = errors.New("protocol: corrupt record batch")
	// ErrInvalidBatch means the batch breaks a rule: wrong magic, more
	// than one batch, counts or records that do not match what the
	// header declares (INVALID_RECORD).
	ErrInvalidBatch = errors.New("protocol: invalid record batch")
	// ErrUnsupportedCodec means the compression bits name no known codec
	// (UNSUPPORTED_COMPRESSION_TYPE).
	ErrUnsupportedCodec = errors.New("protocol: unsupported compression codec")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BatchCRC computes the CRC-32C of a batch as Kafka defines it (attributes to end).
func BatchCRC(batch []byte) uint32 {
	return crc32.Checksum(batch[21:], castagnoli)
}

// ParseBatchHeader decodes the header of the first batch in b without
// checking the CRC. It checks that the whole batch is present and that the
// magic is 2. The returned header's Records field aliases b.
func ParseBatchHeader(b []byte) (kmsg.RecordBatch, error) {
	var h kmsg.RecordBatch
	if len(b) < BatchHeaderSize {
		return h, fmt.Errorf("%w: %d bytes, header needs %d", ErrCorruptBatch, len(b), BatchHeaderSize)
	}
	length := int32(binary.BigEndian.Uint32(b[8:]))
	if length < batchLengthOverhead || int64(length)+12 > int64(len(b)) {
		return h, fmt.Errorf("%w: length field %d with %d bytes present", ErrCorruptBatch, length, len(b))
	}
	if b[16] != 2 {
		return h, fmt.Errorf("%w: magic %d, only magic 2 is supported", ErrInvalidBatch, int8(b[16]))
	}
	if err := h.UnsafeReadFrom(b[:12+int(length)]); err != nil {
		return h, fmt.Errorf("%w: %v", ErrCorruptBatch, err)
	}
	return h, nil
}

// BatchSize returns the total size of the first batch in b (length field + 12),
// or 0 when b is too short to tell or the length field is negative.
func BatchSize(b []byte) int {
	if len(b) < 12 {
		return 0
	}
	length := int32(binary.BigEndian.Uint32(b[8:]))
	if length < 0 {
		return 0 // never a negative size: callers slice with it
	}
	return int(length) + 12
}

// SetBaseOffset writes the base offset into a batch. The CRC does not cover it.
func SetBaseOffset(batch []byte, offset int64) {
	binary.BigEndian.PutUint64(batch[0:], uint64(offset))
}

// SetPartitionLeaderEpoch writes the leader epoch into a batch. The CRC does not cover it.
func SetPartitionLeaderEpoch(batch []byte, epoch int32) {
	binary.BigEndian.PutUint32(batch[12:], uint32(epoch))
}

// SetLogAppendTime marks a batch as LogAppendTime with the given max
// timestamp and recomputes its CRC, as Kafka does for topics with
// message.timestamp.type=LogAppendTime.
func SetLogAppendTime(batch []byte, ts int64) {
	attrs := binary.BigEndian.Uint16(batch[21:])
	binary.BigEndian.PutUint16(batch[21:], attrs|AttrLogAppendTime)
	binary.BigEndian.PutUint64(batch[35:], uint64(ts))
	binary.BigEndian.PutUint32(batch[17:], BatchCRC(batch))
}

// SetMaxTimestamp sets a CreateTime batch's max timestamp and recomputes
// its CRC, as Kafka does with the largest record timestamp it finds
// while validating a produced batch (ValidateProduceBatch reports it). It
// does nothing when the batch already says ts.
func SetMaxTimestamp(batch []byte, ts int64) {
	if int64(binary.BigEndian.Uint64(batch[35:])) == ts {
		return
	}
	binary.BigEndian.PutUint64(batch[35:], uint64(ts))
	binary.BigEndian.PutUint32(batch[17:], BatchCRC(batch))
}

// SetTransactional makes a batch (as BuildBatch makes them) part of a
// transaction of producerID at epoch: the transactional attribute, the
// producer id and epoch (the base sequence stays -1, as in the
// transactional offset commits Kafka's group coordinator writes), and a
// new CRC.
func SetTransactional(batch []byte, producerID int64, epoch int16) {
	attrs := binary.BigEndian.Uint16(batch[21:])
	binary.BigEndian.PutUint16(batch[21:], attrs|uint16(AttrTransactional))
	binary.BigEndian.PutUint64(batch[43:], uint64(producerID))
	binary.BigEndian.PutUint16(batch[51:], uint16(epoch))
	binary.BigEndian.PutUint32(batch[17:], BatchCRC(batch))
}
