package broker

// DeleteTopics (key 20), v0-v6.
//
// Behavior:
//   - v0-v5 name topics in TopicNames; v6 in Topics, each by name or by id.
//     A v6 entry with neither or both gets INVALID_REQUEST, as do a name or id
//     given more than once and a name whose topic's id is also given (every
//     occurrence).
//   - Unknown names get UNKNOWN_TOPIC_OR_PARTITION, unknown ids UNKNOWN_TOPIC_ID;
//     names are not otherwise validated (an invalid name is simply unknown).
//   - With delete.topic.enable=false every topic, known or not, gets
//     TOPIC_DELETION_DISABLED (INVALID_REQUEST before v3), as in Kafka.
//   - Internal topics (__consumer_offsets, __transaction_state) are refused
//     with TOPIC_DELETION_DISABLED (INVALID_REQUEST before v3, as Kafka answers
//     when deletion is disabled). Kafka's controller would delete them and
//     lose every committed offset and transaction; Gregor's coordinator owns
//     those logs, so they are kept.
//   - The metadata write removes the topic and its partition states and
//     records the deletion by topic id, in one etcd transaction; the answer
//     waits until this broker's metadata cache has applied it, so every
//     later request here sees the topic gone. Each broker then closes the
//     topic's logs and renames their directories <topic>-<p>.<id>-delete,
//     removed after file.delete.delay.ms (partition_dirs.go). Only such a
//     deletion removes data; a topic that merely vanishes from etcd keeps it.
//   - TimeoutMillis > 0 bounds the metadata write (REQUEST_TIMED_OUT).
//   - Responses follow the request's order and carry the topic's name and,
//     v6, its id whenever known; v5+ carry error messages.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/metadata"
)

func (b *Broker) deleteTopicsHandler() handler {
	return handle(kmsg.DeleteTopics.Int16(), 0, 6, b.handleDeleteTopics)
}

// deleteTarget is one topic a DeleteTopics request names.
type deleteTarget struct {
	name  *string  // as requested; nil when by id
	id    [16]byte // as requested; zero when by name
	topic metadata.Topic
	err   error
}

func (d *deleteTarget) byID() bool { return d.name == nil }

func (b *Broker) handleDeleteTopics(c *conn, req *kmsg.DeleteTopicsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	ctx, cancel := adminRequestContext(c, req.TimeoutMillis)
	defer cancel()

	var targets []deleteTarget
	if req.Version >= 6 {
		targets = make([]deleteTarget, 0, len(req.Topics))
		for _, rt := range req.Topics {
			targets = append(targets, deleteTarget{name: rt.Topic, id: rt.TopicID})
		}
	} else {
		targets = make([]deleteTarget, 0, len(req.TopicNames))
		for i := range req.TopicNames {
			targets = append(targets, deleteTarget{name: &req.TopicNames[i]})
		}
	}
	b.resolveDeleteTargets(targets)

	disabled := b.brokerConfig("delete.topic.enable") == "false"
	for i := range targets {
		d := &targets[i]
		switch {
		case disabled:
			d.err = deletionDisabled(req.Version, "Topic deletion is disabled.")
		case d.err == nil:
			d.err = b.deleteTopic(ctx, req.Version, d)
		}
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = d.name, d.id
		if d.topic.Name != "" {
			name := d.topic.Name
			st.Topic, st.TopicID = &name, d.topic.ID
		}
		if d.err != nil {
			st.ErrorCode = errCode(d.err)
			st.ErrorMessage = adminMessage(d.err)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// resolveDeleteTargets looks every target up, setting its topic or its error.
func (b *Broker) resolveDeleteTargets(targets []deleteTarget) {
	var zero [16]byte
	names := make(map[string]int)
	ids := make(map[[16]byte]int)
	for _, d := range targets {
		switch {
		case d.name != nil && d.id == zero:
			names[*d.name]++
		case d.name == nil && d.id != zero:
			ids[d.id]++
		}
	}
	resolved := make(map[metadata.TopicID]int)
	for i := range targets {
		d := &targets[i]
		switch {
		case d.name == nil && d.id == zero:
			d.err = adminErrorf(kerr.InvalidRequest, "Neither topic name nor id were specified.")
		case d.name != nil && d.id != zero:
			d.err = adminErrorf(kerr.InvalidRequest, "You may not specify both topic name and topic id.")
		case d.name != nil && names[*d.name] > 1:
			d.err = adminErrorf(kerr.InvalidRequest, "Duplicate topic name.")
		case d.name == nil && ids[d.id] > 1:
			d.err = adminErrorf(kerr.InvalidRequest, "Duplicate topic id.")
		case d.name != nil:
			t, ok := b.store.Topic(*d.name)
			if !ok {
				d.err = kerr.UnknownTopicOrPartition
				continue
			}
			d.topic = t
			resolved[t.ID]++
		default:
			t, ok := b.store.TopicByID(d.id)
			if !ok {
				d.err = kerr.UnknownTopicID
				continue
			}
			d.topic = t
			resolved[t.ID]++
		}
	}
	for i := range targets {
		d := &targets[i]
		if d.err == nil && resolved[d.topic.ID] > 1 {
			d.err = adminErrorf(kerr.InvalidRequest, "The provided topic name maps to an ID that was already supplied.")
		}
	}
}

// deleteTopic deletes one resolved topic and its local logs.
// deletionDisabled is TOPIC_DELETION_DISABLED, INVALID_REQUEST before v3.
func deletionDisabled(version int16, msg string) error {
	code := kerr.TopicDeletionDisabled
	if version < 3 {
		code = kerr.InvalidRequest
	}
	return adminErrorf(code, "%s", msg)
}

func (b *Broker) deleteTopic(ctx context.Context, version int16, d *deleteTarget) error {
	t := d.topic
	if isInternalTopic(t.Name) {
		return deletionDisabled(version, "Topic '"+t.Name+"' is internal and cannot be deleted.")
	}
	if err := b.store.DeleteTopic(ctx, t.Name); err != nil {
		if errors.Is(err, metadata.ErrUnknownTopic) {
			if d.byID() {
				return kerr.UnknownTopicID
			}
			return kerr.UnknownTopicOrPartition
		}
		return b.metadataWriteError(err, "delete topic", t.Name)
	}
	b.log.Info().Str("topic", t.Name).Stringer("topic_id", t.ID).Int32("partitions", t.Partitions).Msg("deleted topic")
	return nil
}
