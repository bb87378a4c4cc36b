// Records inside a magic-2 batch.
//
// The records section (after the 61-byte header, decompressed as a whole
// when the codec is not none) holds NumRecords records back to back:
//
//	length          varint    bytes after this field
//	attributes      int8      unused, 0
//	timestampDelta  varlong   from the batch's first timestamp
//	offsetDelta     varint    from the batch's base offset
//	key             varint length (-1 = null) + bytes
//	value           varint length (-1 = null) + bytes
//	headers         varint count, then per header:
//	                  key   varint length + UTF-8 bytes
//	                  value varint length (-1 = null) + bytes
//
// Varints are zigzag encoded, as in protobuf. The smallest record is 7
// bytes (each field one byte, key and value null, no headers).
package protocol

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// minRecordSize is the smallest encoded record, its length field included.
const minRecordSize = 7

// RecordAt is a decoded record with its absolute offset and timestamp.
type RecordAt struct {
	// Offset is the batch's base offset plus the record's offset delta.
	Offset int64
	// Timestamp is the batch's first timestamp plus the record's
	// timestamp delta, or the batch's max timestamp for LogAppendTime
	// batches (the broker's append time replaces every record's time).
	Timestamp int64
	Record    kmsg.Record
}

// Records decodes the records of the first batch in batch, decompressing
// them with c's limit if needed. It does not check the CRC (use
// Codecs.ValidateProduceBatch for bytes from a client); it does check that the
// declared count fits the bytes present, that every record's length
// matches its fields, and that no bytes follow the last record.
//
// The records' Key, Value and header values alias batch (uncompressed) or
// a buffer owned by the caller (compressed); copy them to keep them past
// the life of batch.
func (c *Codecs) Records(batch []byte) ([]kmsg.Record, error) {
	h, data, err := c.recordsSection(batch)
	if err != nil {
		return nil, err
	}
	recs := make([]kmsg.Record, h.NumRecords)
	err = decodeRecords(data, len(recs), func(i int) *kmsg.Record { return &recs[i] })
	if err != nil {
		return nil, err
	}
	return recs, nil
}

// RecordsAt is Records with each record's absolute offset and timestamp.
func (c *Codecs) RecordsAt(batch []byte) ([]RecordAt, error) {
	h, data, err := c.recordsSection(batch)
	if err != nil {
		return nil, err
	}
	recs := make([]RecordAt, h.NumRecords)
	err = decodeRecords(data, len(recs), func(i int) *kmsg.Record { return &recs[i].Record })
	if err != nil {
		return nil, err
	}
	logAppend := h.Attributes&AttrLogAppendTime != 0
	for i := range recs {
		r := &recs[i]
		r.Offset = h.FirstOffset + int64(r.Record.OffsetDelta)
		if logAppend {
			r.Timestamp = h.MaxTimestamp
		} else {
			r.Timestamp = h.FirstTimestamp + r.Record.TimestampDelta64
		}
	}
	return recs, nil
}

// recordsSection parses the batch header and returns the (decompressed)
// records section, after checking that the declared record count can fit.
func (c *Codecs) recordsSection(batch []byte) (kmsg.RecordBatch, []byte, error) {
	h, err := ParseBatchHeader(batch)
	if err != nil {
		return h, nil, err
	}
	if h.NumRecords < 0 {
		return h, nil, fmt.Errorf("%w: record count %d", ErrCorruptBatch, h.NumRecords)
	}
	data := h.Records
	codec := Codec(h.Attributes & AttrCompressionMask)
	if codec != CodecNone {
		if data, err = c.DecompressLimit(codec, data, c.limit); err != nil {
			return h, nil, err
		}
	}
	// Bound the count by the bytes before allocating a slice for it.
	if int64(h.NumRecords)*minRecordSize > int64(len(data)) {
		return h, nil, fmt.Errorf("%w: %d records cannot fit in %d bytes", ErrCorruptBatch, h.NumRecords, len(data))
	}
	return h, data, nil
}

// decodeRecords decodes n records from data into the records at(i) points to.
func decodeRecords(data []byte, n int, at func(int) *kmsg.Record) error {
	for i := range n {
		l, ln := kbin.Varint(data)
		if ln <= 0 {
			return fmt.Errorf("%w: record %d: bad length varint", ErrCorruptBatch, i)
		}
		if l < minRecordSize-1 || int64(l) > int64(len(data)-ln) {
			return fmt.Errorf("%w: record %d: length %d with %d bytes left", ErrCorruptBatch, i, l, len(data)-ln)
		}
		end := ln + int(l)
		r := at(i)
		if err := r.ReadFrom(data[:end]); err != nil {
			return fmt.Errorf("%w: record %d: %v", ErrCorruptBatch, i, err)
		}
		// kmsg does not say how much it consumed; a record whose fields
		// re-encode to a different size had trailing bytes (or
		// non-minimal varints, which no client writes), and Kafka
		// rejects the former as an invalid record size.
		if got := recordBodyLen(r); got != int(l) {
			return fmt.Errorf("%w: record %d: length %d, fields take %d", ErrCorruptBatch, i, l, got)
		}
		data = data[end:]
	}
	if len(data) != 0 {
		return fmt.Errorf("%w: %d bytes after the last of %d records", ErrCorruptBatch, len(data), n)
	}
	return nil
}

// recordBodyLen is the encoded size of r after its length field.
func recordBodyLen(r *kmsg.Record) int {
	n := 1 + // attributes
		kbin.VarlongLen(r.TimestampDelta64) +
		kbin.VarintLen(r.OffsetDelta) +
		varintBytesLen(r.Key) +
		varintBytesLen(r.Value) +
		kbin.VarintLen(int32(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		n += kbin.VarintLen(int32(len(h.Key))) + len(h.Key) + varintBytesLen(h.Value)
	}
	return n
}

func varintBytesLen(b []byte) int {
	if b == nil {
		return kbin.VarintLen(-1)
	}
	return kbin.VarintLen(int32(len(b))) + len(b)
}

// BuildBatch encodes records into one magic-2 batch compressed with codec,
// as a producer would: base offset 0, partition leader epoch -1, producer
// id, epoch and base sequence -1, offset deltas 0..n-1, first timestamp
// baseTimestamp and max timestamp baseTimestamp plus the largest delta.
//
// Each record's timestamp delta (TimestampDelta64, or TimestampDelta when
// that is 0) is taken as given; Length and OffsetDelta are computed. The
// caller's records are not modified. The batch passes
// Codecs.ValidateProduceBatch when records is not empty and its
// timestamps suit the topic.
func (c *Codecs) BuildBatch(codec Codec, baseTimestamp int64, records []kmsg.Record) ([]byte, error) {
	if codec < CodecNone || codec > CodecZstd {
		return nil, fmt.Errorf("%w: codec %d", ErrUnsupportedCodec, codec)
	}
	if len(records) > math.MaxInt32 {
		return nil, fmt.Errorf("%w: %d records", ErrInvalidBatch, len(records))
	}
	size := 0
	for i := range records {
		size += 10 + recordBodyLen(&records[i]) // room for the length and offset delta varints
	}
	var body []byte
	if codec == CodecNone {
		body = make([]byte, BatchHeaderSize, BatchHeaderSize+size)
	} else {
		body = make([]byte, 0, size)
	}
	maxDelta := int64(0)
	for i := range records {
		r := records[i] // a shallow copy: the caller's record stays as it was
		d := r.TimestampDelta64
		if d == 0 {
			d = int64(r.TimestampDelta)
		}
		r.TimestampDelta64, r.TimestampDelta = d, int32(d)
		r.OffsetDelta = int32(i)
		l := recordBodyLen(&r)
		if l > math.MaxInt32 {
			return nil, fmt.Errorf("%w: record %d is %d bytes", ErrInvalidBatch, i, l)
		}
		r.Length = int32(l)
		if i == 0 || d > maxDelta {
			maxDelta = d
		}
		body = r.AppendTo(body)
	}
	batch := body
	if codec != CodecNone {
		var err error
		batch = make([]byte, BatchHeaderSize, BatchHeaderSize+len(body)/2+64)
		if batch, err = c.AppendCompress(batch, codec, body); err != nil {
			return nil, err
		}
	}
	if len(batch)-12 > math.MaxInt32 {
		return nil, fmt.Errorf("%w: batch of %d bytes", ErrInvalidBatch, len(batch))
	}
	n := int32(len(records))
	be := binary.BigEndian
	be.PutUint64(batch[0:], 0)                               // base offset
	be.PutUint32(batch[8:], uint32(len(batch)-12))           // length
	be.PutUint32(batch[12:], math.MaxUint32)                 // partition leader epoch -1
	batch[16] = 2                                            // magic
	be.PutUint16(batch[21:], uint16(codec))                  // attributes
	be.PutUint32(batch[23:], uint32(n-1))                    // last offset delta
	be.PutUint64(batch[27:], uint64(baseTimestamp))          // first timestamp
	be.PutUint64(batch[35:], uint64(baseTimestamp+maxDelta)) // max timestamp
	be.PutUint64(batch[43:], math.MaxUint64)                 // producer id -1
	be.PutUint16(batch[51:], math.MaxUint16)                 // producer epoch -1
	be.PutUint32(batch[53:], math.MaxUint32)                 // base sequence -1
	be.PutUint32(batch[57:], uint32(n))                      // record count
	be.PutUint32(batch[17:], BatchCRC(batch))                // CRC, last: it covers 21..end
	return batch, nil
}
