package protocol

// Rewriting a stored batch with some of its records left out, as the log
// cleaner does (Kafka's MemoryRecords.filterTo for magic 2).

import (
	"encoding/binary"
	"fmt"
	"math"
)

// FilterBatch returns batch with only the records keep accepts, in
// order. The header keeps everything that names the batch: base offset,
// last offset delta (so the batch still spans the same offsets, gaps
// inside it being normal in a compacted log), partition leader epoch,
// base and max timestamp, producer id, epoch and base sequence, and the
// attributes (a delete horizon stays, see SetDeleteHorizon); the record count and the CRC are recomputed and the
// records compressed again with the batch's codec. Each kept record keeps
// its offset and timestamp deltas, so it reads back with the same offset
// and timestamp.
//
// When every record is kept, batch itself is returned. When none is, the
// result is an empty batch (no records, compression bit cleared), which
// the caller may keep to preserve the producer's state, as Kafka does, or
// drop. kept is how many records the result holds.
func (c *Codecs) FilterBatch(batch []byte, keep func(r *RecordAt) bool) (out []byte, kept int, err error) {
	recs, err := c.RecordsAt(batch)
	if err != nil {
		return nil, 0, err
	}
	n := BatchSize(batch)
	var body []byte
	for i := range recs {
		if !keep(&recs[i]) {
			continue
		}
		r := recs[i].Record
		r.Length = int32(recordBodyLen(&r))
		body = r.AppendTo(body)
		kept++
	}
	if kept == len(recs) {
		return batch[:n], kept, nil
	}
	out, err = c.rebuild(batch, body, kept, binary.BigEndian.Uint16(batch[21:]), nil)
	return out, kept, err
}

// DeleteHorizon returns the delete horizon (Unix ms) batch carries, if
// its attributes say it has one (AttrDeleteHorizon): the time from which
// the log cleaner may remove its tombstones, or the batch when it is the
// marker of a transaction with nothing left (KIP-534).
func DeleteHorizon(batch []byte) (int64, bool) {
	if binary.BigEndian.Uint16(batch[21:])&AttrDeleteHorizon == 0 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(batch[27:])), true
}

// SetDeleteHorizon returns batch rewritten to carry the delete horizon
// horizonMs, as Kafka's cleaner does the first time it keeps a tombstone
// or an empty transaction's marker (KIP-534): the AttrDeleteHorizon bit
// set, the base timestamp field holding horizonMs, and every record's
// timestamp delta made relative to it, so each record reads back with the
// timestamp it had (base timestamp + delta; a LogAppendTime batch's
// records read the max timestamp, as before). The max timestamp, offsets,
// producer fields and the other attributes stay; the records are
// compressed again with the batch's codec and the CRC recomputed.
func (c *Codecs) SetDeleteHorizon(batch []byte, horizonMs int64) ([]byte, error) {
	recs, err := c.RecordsAt(batch)
	if err != nil {
		return nil, err
	}
	var body []byte
	for i := range recs {
		r := recs[i].Record
		d := recs[i].Timestamp - horizonMs // wraps as in Kafka
		// kmsg writes TimestampDelta when TimestampDelta64 is 0: both
		// must say the new delta.
		r.TimestampDelta64, r.TimestampDelta = d, int32(d)
		r.Length = int32(recordBodyLen(&r))
		body = r.AppendTo(body)
	}
	attrs := binary.BigEndian.Uint16(batch[21:]) | AttrDeleteHorizon
	return c.rebuild(batch, body, len(recs), attrs, &horizonMs)
}

// rebuild makes a batch of the header of batch with the records body
// (kept of them, uncompressed), compressed with the batch's codec, with
// attributes attrs and, when baseTs is not nil, that base timestamp; the record
// count, length and CRC are recomputed. No record clears the codec.
func (c *Codecs) rebuild(batch, body []byte, kept int, attrs uint16, baseTs *int64) ([]byte, error) {
	codec := Codec(attrs & AttrCompressionMask)
	out := make([]byte, BatchHeaderSize, BatchHeaderSize+len(body))
	copy(out, batch[:BatchHeaderSize])
	var err error
	switch {
	case kept == 0:
		attrs &^= AttrCompressionMask
	case codec == CodecNone:
		out = append(out, body...)
	default:
		if out, err = c.AppendCompress(out, codec, body); err != nil {
			return nil, fmt.Errorf("recompress filtered batch: %w", err)
		}
	}
	if len(out)-12 > math.MaxInt32 {
		return nil, fmt.Errorf("%w: filtered batch of %d bytes", ErrInvalidBatch, len(out))
	}
	be := binary.BigEndian
	be.PutUint32(out[8:], uint32(len(out)-12))
	be.PutUint16(out[21:], attrs)
	if baseTs != nil {
		be.PutUint64(out[27:], uint64(*baseTs))
	}
	be.PutUint32(out[57:], uint32(kept))
	be.PutUint32(out[17:], BatchCRC(out))
	return out, nil
}

// BatchRecordCount is the record count field of a batch's header.
func BatchRecordCount(batch []byte) int32 {
	return int32(binary.BigEndian.Uint32(batch[57:]))
}
