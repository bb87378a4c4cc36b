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
// first and max timestamp, producer id, epoch and base sequence, and the
// attributes; the record count and the CRC are recomputed and the
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
	attrs := binary.BigEndian.Uint16(batch[21:])
	codec := Codec(attrs & AttrCompressionMask)
	out = make([]byte, BatchHeaderSize, BatchHeaderSize+len(body))
	copy(out, batch[:BatchHeaderSize])
	switch {
	case kept == 0:
		attrs &^= AttrCompressionMask
	case codec == CodecNone:
		out = append(out, body...)
	default:
		if out, err = c.AppendCompress(out, codec, body); err != nil {
			return nil, 0, fmt.Errorf("recompress filtered batch: %w", err)
		}
	}
	if len(out)-12 > math.MaxInt32 {
		return nil, 0, fmt.Errorf("%w: filtered batch of %d bytes", ErrInvalidBatch, len(out))
	}
	be := binary.BigEndian
	be.PutUint32(out[8:], uint32(len(out)-12))
	be.PutUint16(out[21:], attrs)
	be.PutUint32(out[57:], uint32(kept))
	be.PutUint32(out[17:], BatchCRC(out))
	return out, kept, nil
}

// BatchRecordCount is the record count field of a batch's header.
func BatchRecordCount(batch []byte) int32 {
	return int32(binary.BigEndian.Uint32(batch[57:]))
}
