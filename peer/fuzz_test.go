package peer

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzDecodeResponse: a broker decodes what another broker (or anything
// listening at its address) sends; no bytes make it panic.
func FuzzDecodeResponse(f *testing.F) {
	fetch := kmsg.NewPtrFetchResponse()
	fetch.SetVersion(12)
	t := kmsg.NewFetchResponseTopic()
	t.Topic = "t"
	p := kmsg.NewFetchResponseTopicPartition()
	p.RecordBatches = []byte{1, 2, 3}
	t.Partitions = append(t.Partitions, p)
	fetch.Topics = append(fetch.Topics, t)
	good := append([]byte{0, 0, 0, 7, 0}, fetch.AppendTo(nil)...)
	f.Add(good)
	f.Add(append(good, 0xff))
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 7})
	f.Add([]byte{0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, frame []byte) {
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(12)
		_, _ = decodeResponse(req, 7, frame, "fuzz")
		oreq := kmsg.NewPtrOffsetForLeaderEpochRequest()
		oreq.SetVersion(3)
		_, _ = decodeResponse(oreq, 7, frame, "fuzz")
	})
}
