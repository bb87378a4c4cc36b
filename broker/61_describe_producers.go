package broker

// DescribeProducers (key 61), v0.
//
// Behavior: for each partition this broker leads, the producers in its
// producer state (storage/producers.go): id, epoch, last sequence number,
// last timestamp and the first offset of an open transaction (-1: none).
// The coordinator epoch is -1: no transaction coordinator writes markers
// yet. A partition led elsewhere gets NOT_LEADER_OR_FOLLOWER, an unknown
// one UNKNOWN_TOPIC_OR_PARTITION.

import (
	"cmp"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/storage"
)

func (b *Broker) describeProducersHandler() handler {
	return handle(kmsg.DescribeProducers.Int16(), 0, 0, b.handleDescribeProducers)
}

func (b *Broker) handleDescribeProducers(c *conn, req *kmsg.DescribeProducersRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewDescribeProducersResponseTopic()
		st.Topic = rt.Topic
		for _, p := range rt.Partitions {
			sp := kmsg.NewDescribeProducersResponseTopicPartition()
			sp.Partition = p
			part, err := b.parts.get(rt.Topic, p)
			if err != nil {
				sp.ErrorCode = errCode(err)
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			states := part.log.Producers()
			slices.SortFunc(states, func(a, b storage.ProducerState) int { return cmp.Compare(a.ProducerID, b.ProducerID) })
			for _, ps := range states {
				ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
				ap.ProducerID = ps.ProducerID
				ap.ProducerEpoch = int32(ps.Epoch)
				if n := len(ps.Batches); n > 0 {
					ap.LastSequence = ps.Batches[n-1].LastSeq
				}
				ap.LastTimestamp = ps.LastTimestamp
				ap.CoordinatorEpoch = -1
				ap.CurrentTxnStartOffset = ps.TxnFirstOffset
				sp.ActiveProducers = append(sp.ActiveProducers, ap)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
