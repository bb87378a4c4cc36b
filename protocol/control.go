// Control batches: the transaction markers Kafka writes into partitions.
//
// A control batch has the transactional and control attribute bits set,
// no compression, the producer id and epoch of the transaction, base
// sequence -1, and exactly one record whose key is
//
//	int16 version (0), int16 type (0 abort, 1 commit)
//
// and whose value, for transaction markers, is
//
//	int16 version (0), int32 coordinator epoch.
package protocol

import (
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Control record types (the key's type field).
const (
	ControlAbort  int16 = 0
	ControlCommit int16 = 1
)

// ParseControlBatch returns the type of the control record in batch, a
// whole control batch (the caller checked the header and CRC).
func ParseControlBatch(batch []byte) (int16, error) {
	if len(batch) < BatchHeaderSize {
		return 0, fmt.Errorf("%w: control batch of %d bytes", ErrCorruptBatch, len(batch))
	}
	attrs := int16(binary.BigEndian.Uint16(batch[21:]))
	if attrs&AttrControl == 0 || attrs&AttrCompressionMask != 0 {
		return 0, fmt.Errorf("%w: attributes %#x are not an uncompressed control batch", ErrInvalidBatch, attrs)
	}
	r := kbin.Reader{Src: batch[BatchHeaderSize:]}
	r.Varint()  // record length
	r.Int8()    // attributes
	r.Varlong() // timestamp delta
	r.Varint()  // offset delta
	keyLen := r.Varint()
	key := r.Span(int(keyLen)) // nil when cut short (or negative)
	if keyLen < 4 || len(key) < 4 {
		return 0, fmt.Errorf("%w: control record key of %d bytes (%d there)", ErrCorruptBatch, keyLen, len(key))
	}
	typ := int16(binary.BigEndian.Uint16(key[2:]))
	if typ != ControlAbort && typ != ControlCommit {
		return typ, fmt.Errorf("%w: control record type %d is not a transaction marker", ErrInvalidBatch, typ)
	}
	return typ, nil
}

// NewControlBatch builds a transaction marker batch (base offset 0, to be
// set on append) for producerID at epoch, at time ts.
func NewControlBatch(producerID int64, epoch int16, commit bool, coordinatorEpoch int32, ts int64) []byte {
	typ := ControlAbort
	if commit {
		typ = ControlCommit
	}
	key := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), uint16(typ))
	val := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(nil, 0), uint32(coordinatorEpoch))
	rec := kmsg.Record{Key: key, Value: val}
	rec.Length = int32(len(rec.AppendTo(nil)) - 1) // Length 0 took one varint byte
	recs := rec.AppendTo(nil)
	b := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           AttrTransactional | AttrControl,
		FirstTimestamp:       ts,
		MaxTimestamp:         ts,
		ProducerID:           producerID,
		ProducerEpoch:        epoch,
		FirstSequence:        -1,
		NumRecords:           1,
		Records:              recs,
		Length:               int32(batchLengthOverhead + len(recs)),
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[17:], BatchCRC(raw))
	return raw
}
