package broker

// DescribeLogDirs (key 35), v0-v5.
//
// Behavior:
//   - One log directory: the absolute path of the data directory.
//   - A null topic list describes every partition this broker hosts (logs
//     are opened when a topic or partition is created and at start); a
//     list describes the partitions asked for, leaving out those not here
//     (unknown topics or partitions). A topic asked for twice is answered
//     once, its partitions merged.
//   - Each partition reports its log size, an offset lag of
//     max(high watermark - log end offset, 0) (always 0 for a leader), and
//     is never a future replica.
//   - The data directory's file system is read for its total and usable
//     bytes (reported v4+); when it cannot be read, the directory is
//     reported offline (KAFKA_STORAGE_ERROR) with no partitions, at every
//     version. v5: never cordoned.
//   - Partitions of a null-list request are sorted by topic and partition;
//     otherwise they follow the request's order.

import (
	"cmp"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) describeLogDirsHandler() handler {
	return handle(kmsg.DescribeLogDirs.Int16(), 0, 5, b.handleDescribeLogDirs)
}

func (b *Broker) handleDescribeLogDirs(_ *conn, req *kmsg.DescribeLogDirsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir = b.cfg.DataDir
	if abs, err := filepath.Abs(b.cfg.DataDir); err == nil {
		dir.Dir = abs
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir.Dir, &fs); err != nil {
		b.log.Warn().Err(err).Str("dir", dir.Dir).Msg("cannot read data directory's file system")
		dir.ErrorCode = kerr.KafkaStorageError.Code
		resp.Dirs = append(resp.Dirs, dir)
		return resp, nil
	}
	dir.TotalBytes = int64(fs.Blocks) * int64(fs.Bsize)
	dir.UsableBytes = int64(fs.Bavail) * int64(fs.Bsize)

	if req.Topics == nil {
		dir.Topics = describeAllLogDirs(b.parts.all())
	} else {
		dir.Topics = b.describeAskedLogDirs(req.Topics)
	}
	resp.Dirs = append(resp.Dirs, dir)
	return resp, nil
}

// describeAllLogDirs describes the given partitions, grouped by topic and sorted.
func describeAllLogDirs(parts []*partition) []kmsg.DescribeLogDirsResponseDirTopic {
	slices.SortFunc(parts, func(x, y *partition) int {
		return cmp.Or(cmp.Compare(x.topic, y.topic), cmp.Compare(x.index, y.index))
	})
	var out []kmsg.DescribeLogDirsResponseDirTopic
	for _, p := range parts {
		if len(out) == 0 || out[len(out)-1].Topic != p.topic {
			t := kmsg.NewDescribeLogDirsResponseDirTopic()
			t.Topic = p.topic
			out = append(out, t)
		}
		last := &out[len(out)-1]
		last.Partitions = append(last.Partitions, describeLogDirPartition(p))
	}
	return out
}

// describeAskedLogDirs describes the open partitions among those asked for.
func (b *Broker) describeAskedLogDirs(topics []kmsg.DescribeLogDirsRequestTopic) []kmsg.DescribeLogDirsResponseDirTopic {
	var out []kmsg.DescribeLogDirsResponseDirTopic
	at := make(map[string]int)            // topic -> index in out
	done := make(map[topicPartition]bool) // partitions already described
	for _, rt := range topics {
		for _, p := range rt.Partitions {
			key := topicPartition{rt.Topic, p}
			if done[key] {
				continue
			}
			done[key] = true
			part := b.parts.lookup(rt.Topic, p)
			if part == nil {
				continue
			}
			i, ok := at[rt.Topic]
			if !ok {
				t := kmsg.NewDescribeLogDirsResponseDirTopic()
				t.Topic = rt.Topic
				out = append(out, t)
				i = len(out) - 1
				at[rt.Topic] = i
			}
			out[i].Partitions = append(out[i].Partitions, describeLogDirPartition(part))
		}
	}
	return out
}

func describeLogDirPartition(p *partition) kmsg.DescribeLogDirsResponseDirTopicPartition {
	dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
	dp.Partition = p.index
	dp.Size = p.log.Size()
	dp.OffsetLag = max(p.log.HighWatermark()-p.log.LogEndOffset(), 0)
	return dp
}
