package broker

// Fetch (key 1), v4-v18.
//
// Behavior:
//   - Consumers (replica id -1) and followers (replica id >= 0, v15+ in
//     ReplicaState): a follower reads up to the log end offset instead of
//     the high watermark, waits on the log end offset moving, and its
//     fetch offset is its log end offset, which the leader records
//     (replicas.go): the high watermark advances and a caught-up follower
//     joins the ISR.
//   - Fetch sessions (KIP-227) are not created: every response carries
//     session id 0 (no session), so clients send full fetches. Session
//     epoch -1 (FINAL_EPOCH: close any session, fetch without one) and 0
//     (INITIAL_EPOCH: a new session; Gregor makes none) are full fetches
//     whatever the session id, as in Kafka; an incremental fetch (epoch
//     > 0, or below -1) names a session Gregor does not have and gets
//     FETCH_SESSION_ID_NOT_FOUND. Forgotten topics are ignored.
//   - Reads stop at the high watermark (read_uncommitted) or the last stable
//     offset (read_committed: below the first offset of the earliest open
//     transaction); read_committed responses list the aborted transactions
//     (producer id, first offset) with records in what they return, for
//     the client to drop.
//   - Limits: each partition returns at most its partition max bytes and
//     the whole response at most max bytes and at most the broker's
//     fetch.max.bytes, except that the first batch of the first partition
//     with data is returned whole even when larger, so a consumer can
//     always make progress. The record bytes read are taken from the
//     broker-wide queued.max.response.bytes until written to the socket;
//     a partition whose data does not fit there returns none this time.
//   - A partition listed twice (or more) in one request is served once,
//     at its first position with that position's offsets, and left out of
//     the response elsewhere, as Kafka does (it keys a fetch by partition).
//   - min_bytes / max_wait: when less than min_bytes is available the
//     request waits, waking as soon as any requested partition's high
//     watermark moves, until max_wait (at most maxFetchWait); partition
//     errors answer at once. The wait ends when the client hangs up.
//   - A fetch offset outside [log start, log end] gets OFFSET_OUT_OF_RANGE;
//     the response always carries the high watermark, last stable offset
//     and log start offset.
//   - A partition this broker does not lead gets NOT_LEADER_OR_FOLLOWER;
//     v16+ also carry the current leader and its endpoint (KIP-951).
//   - v9+: a current leader epoch other than ours gets FENCED_LEADER_EPOCH
//     (older) or UNKNOWN_LEADER_EPOCH (newer). v13+ names topics by id
//     (UNKNOWN_TOPIC_ID).

import (
	"errors"
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/storage"
)

func (b *Broker) fetchHandler() handler {
	return handle(kmsg.Fetch.Int16(), 4, 18, b.handleFetch)
}

// maxFetchWait bounds the max_wait a Fetch request may ask for.
const maxFetchWait = 5 * time.Minute

// Fetch session epochs (KIP-227) that ask for a full fetch.
const (
	fetchFinalEpoch   = -1 // no session
	fetchInitialEpoch = 0  // open a new session
)

func (b *Broker) handleFetch(c *conn, req *kmsg.FetchRequest) (kmsg.Response, error) {
	if req.SessionEpoch != fetchFinalEpoch && req.SessionEpoch != fetchInitialEpoch {
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		return resp, nil
	}
	var deadline <-chan time.Time
	if req.MaxWaitMillis > 0 && req.MinBytes > 0 {
		t := time.NewTimer(min(time.Duration(req.MaxWaitMillis)*time.Millisecond, maxFetchWait))
		defer t.Stop()
		deadline = t.C
	}
	budget := b.fetchBudget(req)
	var tally fetchTally
	for {
		resp, size, hasErr, wake := b.fetchOnce(c, req, &tally)
		if hasErr || size >= int64(req.MinBytes) || deadline == nil {
			tally.apply(b.metrics)
			return resp, nil
		}
		// Not enough: this read is dropped (its bytes go back to the
		// response budget) and made again once something moves.
		budget.give(b.recycleFetch(resp))
		tally.reset()
		// Wait for any partition to move, the deadline, or shutdown.
		cases := make([]reflect.SelectCase, 0, len(wake)+2)
		cases = append(cases,
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(deadline)},
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c.ctx.Done())})
		for _, ch := range wake {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		}
		chosen, _, _ := reflect.Select(cases)
		if chosen < 2 {
			resp, _, _, _ = b.fetchOnce(c, req, &tally)
			tally.apply(b.metrics)
			return resp, nil
		}
	}
}

// fetchReplica is the id of the follower that sends req, -1 for a consumer.
func fetchReplica(req *kmsg.FetchRequest) int32 {
	if req.Version >= 15 {
		return req.ReplicaState.ID
	}
	return req.ReplicaID
}

// fetchBudget is the budget req's record bytes are held on until written:
// followers' (queued.max.replica.response.bytes) or consumers'
// (queued.max.response.bytes).
func (b *Broker) fetchBudget(req *kmsg.FetchRequest) *byteBudget {
	if fetchReplica(req) >= 0 {
		return b.replicaBudget
	}
	return b.respBudget
}

// fetchOnce reads what every requested partition has now. wake holds the
// channels that close when those partitions next advance; they are taken
// before reading so no append between the read and the wait is missed.
// What the read adds to the topic counters goes to tally.
func (b *Broker) fetchOnce(c *conn, req *kmsg.FetchRequest, tally *fetchTally) (resp *kmsg.FetchResponse, size int64, hasErr bool, wake []<-chan struct{}) {
	resp = req.ResponseKind().(*kmsg.FetchResponse)
	resp.SetVersion(req.Version)
	remaining := int64(min(req.MaxBytes, b.fetchMaxBytes))
	if remaining <= 0 {
		remaining = 1
	}
	// Each partition is served once, at its first position (Kafka keys a
	// fetch by partition): reading it again would only copy the data.
	type servedKey struct {
		topic     string
		id        [16]byte
		partition int32
	}
	served := make(map[servedKey]struct{})
	readCommitted := req.IsolationLevel == 1
	replica := fetchReplica(req)
	hints := leaderHints{listener: c.listener}
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		name, topicErr := rt.Topic, error(nil)
		if req.Version >= 13 {
			if t, ok := b.store.TopicByID(rt.TopicID); ok {
				name = t.Name
			} else {
				topicErr = kerr.UnknownTopicID
			}
		}
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			key := servedKey{topic: name, partition: rp.Partition}
			if topicErr != nil {
				key.id = rt.TopicID
			}
			if _, dup := served[key]; dup {
				continue
			}
			served[key] = struct{}{}
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
			sp.PreferredReadReplica = -1
			// Kafka sends an empty record set, never a null one; librdkafka
			// rejects a null set ("invalid MessageSetSize -1").
			sp.RecordBatches = []byte{}
			if readCommitted {
				sp.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
			}
			err := topicErr
			if err == nil {
				var n int64
				var ch <-chan struct{}
				n, ch, err = b.fetchPartition(name, rp, &sp, remaining, size == 0, readCommitted, replica, tally)
				size += n
				remaining -= n
				if ch != nil {
					wake = append(wake, ch)
				}
			}
			if err != nil {
				sp.ErrorCode = errCode(err)
				hasErr = true
				if req.Version >= 16 && errors.Is(err, kerr.NotLeaderForPartition) {
					sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = hints.leader(b, name, rp.Partition)
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		if len(st.Partitions) == 0 && len(rt.Partitions) > 0 {
			continue // every partition was listed earlier
		}
		resp.Topics = append(resp.Topics, st)
	}
	for _, br := range hints.brokers {
		fb := kmsg.NewFetchResponseBroker()
		fb.NodeID, fb.Rack = br.NodeID, rackPtr(br.Rack)
		fb.Host, fb.Port = hints.endpoint(br)
		resp.Brokers = append(resp.Brokers, fb)
	}
	return resp, size, hasErr, wake
}

// fetchPartition reads one partition into sp, at most limit bytes (or one
// whole batch when minOne). replica is the fetching follower's id, -1 for
// a consumer. The bytes returned to a consumer, or a failed read, go to
// tally.
func (b *Broker) fetchPartition(topic string, rp *kmsg.FetchRequestTopicPartition, sp *kmsg.FetchResponseTopicPartition, limit int64, minOne, readCommitted bool, replica int32, tally *fetchTally) (int64, <-chan struct{}, error) {
	part, err := b.parts.get(topic, rp.Partition)
	if err != nil {
		return 0, nil, err
	}
	if err := checkLeaderEpoch(rp.CurrentLeaderEpoch, part.leaderEpoch()); err != nil {
		return 0, nil, err
	}
	var wake <-chan struct{}
	var maxOffset int64
	if replica >= 0 {
		wake = part.log.EndChanged()
		if rp.FetchOffset <= part.log.LogEndOffset() {
			b.parts.followerFetched(part, replica, rp.FetchOffset, rp.LogStartOffset)
		}
		maxOffset = part.log.LogEndOffset()
	} else {
		wake = part.log.Changed()
		maxOffset = part.log.HighWatermark()
		if readCommitted {
			maxOffset = part.log.LastStableOffset()
		}
	}
	lso := part.log.LastStableOffset()
	hw := part.log.HighWatermark()
	sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = hw, min(lso, hw), part.log.LogStartOffset()
	limit = min(limit, int64(rp.PartitionMaxBytes))
	if limit < 0 {
		limit = 0
	}
	rr, err := part.log.Read(rp.FetchOffset, limit, minOne, maxOffset)
	if err != nil {
		if errors.Is(err, storage.ErrOffsetOutOfRange) {
			return 0, nil, kerr.OffsetOutOfRange
		}
		b.log.Error().Err(err).Str("topic", topic).Int32("partition", rp.Partition).Int64("offset", rp.FetchOffset).Msg("fetch read failed")
		tally.add(part.metrics, 0, true)
		return 0, nil, kerr.KafkaStorageError
	}
	if rr.Size == 0 {
		return 0, wake, nil
	}
	// The bytes are held until the response is written (conn.go); when
	// the broker holds queued.max.response.bytes already, this partition
	// returns nothing now and the client asks again.
	budget := b.respBudget
	if replica >= 0 {
		budget = b.replicaBudget
	}
	if !budget.tryTake(rr.Size) {
		return 0, wake, nil
	}
	if readCommitted && replica < 0 {
		// The aborted transactions with records in what is returned (up to
		// maxOffset at most): the client drops their records.
		for _, a := range part.log.AbortedTxns(rp.FetchOffset, maxOffset) {
			at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
			at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
			sp.AbortedTransactions = append(sp.AbortedTransactions, at)
		}
	}
	// Here the file ranges become bytes: each range is read (pread) into
	// the response. A sendfile path would instead keep rr.Ranges and write
	// them to the socket between the encoded pieces of the response.
	buf := b.bufs.get(int(rr.Size)) // back to the pool once encoded; see buffers.go
	for _, r := range rr.Ranges {
		if buf, err = r.AppendTo(buf); err != nil {
			budget.give(rr.Size)
			b.bufs.put(buf)
			b.log.Error().Err(err).Str("topic", topic).Int32("partition", rp.Partition).Msg("fetch read failed")
			tally.add(part.metrics, 0, true)
			return 0, nil, kerr.KafkaStorageError
		}
	}
	if n := int64(len(buf)); n != rr.Size { // the charge must equal what recycleFetch gives back
		budget.give(rr.Size - n)
	}
	sp.RecordBatches = buf
	if replica < 0 {
		tally.add(part.metrics, int64(len(buf)), false)
	} else {
		tally.replicated += int64(len(buf))
	}
	return int64(len(buf)), wake, nil
}

// recycleFetch puts a Fetch response's record batch buffers back in the
// pool once they have been copied into the encoded frame (or the response
// is dropped) and returns the bytes they held of queued.max.response.bytes:
// the caller gives those back once the frame is written (or at once).
func (b *Broker) recycleFetch(fr *kmsg.FetchResponse) int64 {
	var n int64
	for i := range fr.Topics {
		for j := range fr.Topics[i].Partitions {
			p := &fr.Topics[i].Partitions[j]
			n += int64(len(p.RecordBatches))
			b.bufs.put(p.RecordBatches)
			p.RecordBatches = nil
		}
	}
	return n
}
