package broker

import (
	"bytes"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/metadata"
	"github.com/gregorbroker/gregor/protocol"
)

// BenchmarkProduceProcess measures Produce requests through a connection's
// processor (parse, dispatch, validation, append, metrics, encoding), one
// batch of 16 records of 100-byte values per request, acks=1, one
// partition, and the request metrics its writer observes. It is the
// data path the metrics counters sit on.
func BenchmarkProduceProcess(b *testing.B) {
	br := newTestBroker(b)
	createPlaced(b, br, metadata.Topic{Name: "bench", Partitions: 1, ReplicationFactor: 1})
	recs := make([]kmsg.Record, 16)
	for i := range recs {
		recs[i].Value = bytes.Repeat([]byte{'v'}, 100)
	}
	batch, err := br.codecs.BuildBatch(protocol.CodecNone, time.Now().UnixMilli(), recs)
	if err != nil {
		b.Fatal(err)
	}
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks, req.TimeoutMillis = 1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "bench"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	frame := protocol.AppendRequest(nil, 1, nil, req)[4:]
	c := newTestConn(br)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for f := range c.out {
			// What the writer does once the frame is written: its
			// request's metrics.
			f.timing.markDequeued()
			br.metrics.observe(&f.timing, time.Now())
			c.pending.Add(-int64(len(f.frame)))
			br.bufs.put(f.frame)
		}
	}()
	in := make([]byte, len(frame))
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		copy(in, frame)
		c.inFlight.Add(1)
		if !c.process(in) {
			b.Fatal("process closed the connection")
		}
	}
	b.StopTimer()
	close(c.out)
	<-done
	if hw := br.parts.lookup("bench", 0).log.LogEndOffset(); hw != int64(16*b.N) {
		b.Fatalf("log end offset %d, want %d", hw, 16*b.N)
	}
}
