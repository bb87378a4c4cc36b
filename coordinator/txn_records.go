package coordinator

// Encoding and decoding of __transaction_state records.
//
// One record per transactional id, keyed by Kafka's TxnMetadataKey and
// valued by TxnMetadataValue (kmsg types, big endian); the last record of
// a key is the transaction's state, and a null value deletes it:
//
//	key                        value
//	TxnMetadataKey v0          TxnMetadataValue v0, or null
//	  int16 version = 0          int16 version = 0
//	  string transactional id    int64 producer id
//	                             int16 producer epoch
//	                             int32 transaction timeout (ms)
//	                             int8 state (0 Empty, 1 Ongoing,
//	                               2 PrepareCommit, 3 PrepareAbort,
//	                               4 CompleteCommit, 5 CompleteAbort)
//	                             nullable [topic, [partition]]
//	                             int64 last update timestamp (ms)
//	                             int64 transaction start timestamp (ms)
//
// Readers accept value versions 0 and 1 (Kafka 3.5+ writes the flexible
// v1); a record with another key version is skipped with a warning.

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnKeyV0 and txnValueV0 are the record versions written.
const (
	txnKeyV0   = 0
	txnValueV0 = 0
)

// txnStatus is a transaction's state, with Kafka's numbering.
type txnStatus int8

const (
	txnEmpty          txnStatus = 0
	txnOngoing        txnStatus = 1
	txnPrepareCommit  txnStatus = 2
	txnPrepareAbort   txnStatus = 3
	txnCompleteCommit txnStatus = 4
	txnCompleteAbort  txnStatus = 5
	txnDead           txnStatus = 6
)

// txnStatusNames are the states' names in DescribeTransactions and
// ListTransactions, as Kafka spells them.
var txnStatusNames = map[txnStatus]string{
	txnEmpty:          "Empty",
	txnOngoing:        "Ongoing",
	txnPrepareCommit:  "PrepareCommit",
	txnPrepareAbort:   "PrepareAbort",
	txnCompleteCommit: "CompleteCommit",
	txnCompleteAbort:  "CompleteAbort",
	txnDead:           "Dead",
}

func (s txnStatus) String() string {
	if n, ok := txnStatusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("TransactionState(%d)", int8(s))
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// txnRecordValue is the stored form of a transaction's state.
type txnRecordValue struct {
	producerID int64
	epoch      int16
	timeoutMs  int32
	state      txnStatus
	parts      []TopicPartition
	updateMs   int64
	startMs    int64
}

// txnRecord returns the key and value of the record storing v for id; a
// nil v gives a tombstone.
func txnRecord(id string, v *txnRecordValue) (key, value []byte) {
	k := kmsg.TxnMetadataKey{Version: txnKeyV0, TransactionalID: id}
	key = k.AppendTo(nil)
	if v == nil {
		return key, nil
	}
	val := kmsg.NewTxnMetadataValue()
	val.Version = txnValueV0
	val.ProducerID = v.producerID
	val.ProducerEpoch = v.epoch
	val.TimeoutMillis = v.timeoutMs
	val.State = kmsg.TransactionState(v.state)
	byTopic := make(map[string][]int32)
	for _, tp := range v.parts {
		byTopic[tp.Topic] = append(byTopic[tp.Topic], tp.Partition)
	}
	topics := make([]string, 0, len(byTopic))
	for t := range byTopic {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		vt := kmsg.NewTxnMetadataValueTopic()
		vt.Topic = t
		vt.Partitions = byTopic[t]
		sort.Slice(vt.Partitions, func(i, j int) bool { return vt.Partitions[i] < vt.Partitions[j] })
		val.Topics = append(val.Topics, vt)
	}
	val.LastUpdateTimestamp = v.updateMs
	val.StartTimestamp = v.startMs
	return key, val.AppendTo(nil)
}

// decodeTxnRecord decodes one record; a nil value (tombstone) gives a nil
// state. It returns errUnknownRecord for key versions it does not know.
func decodeTxnRecord(key, value []byte) (string, *txnRecordValue, error) {
	if len(key) < 2 {
		return "", nil, fmt.Errorf("coordinator: transaction record key of %d bytes", len(key))
	}
	if v := int16(binary.BigEndian.Uint16(key)); v != txnKeyV0 {
		return "", nil, fmt.Errorf("%w: %d in %s", errUnknownRecord, v, TxnStateTopic)
	}
	var k kmsg.TxnMetadataKey
	if err := k.ReadFrom(key); err != nil {
		return "", nil, fmt.Errorf("coordinator: transaction key: %w", err)
	}
	if value == nil {
		return k.TransactionalID, nil, nil
	}
	var v kmsg.TxnMetadataValue
	if err := v.ReadFrom(value); err != nil {
		return "", nil, fmt.Errorf("coordinator: transaction value: %w", err)
	}
	if v.Version > 1 {
		return "", nil, fmt.Errorf("%w: transaction value version %d", errUnknownRecord, v.Version)
	}
	out := &txnRecordValue{
		producerID: v.ProducerID,
		epoch:      v.ProducerEpoch,
		timeoutMs:  v.TimeoutMillis,
		state:      txnStatus(v.State),
		updateMs:   v.LastUpdateTimestamp,
		startMs:    v.StartTimestamp,
	}
	for _, t := range v.Topics {
		for _, p := range t.Partitions {
			out.parts = append(out.parts, TopicPartition{Topic: t.Topic, Partition: p})
		}
	}
	return k.TransactionalID, out, nil
}
