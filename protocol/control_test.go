package protocol_test

import (
	"errors"
	"testing"

	"github.com/gregorbroker/gregor/protocol"
)

func TestControlBatchRoundTrip(t *testing.T) {
	for _, commit := range []bool{true, false} {
		b := protocol.NewControlBatch(42, 3, commit, 9, 1_700_000_000_000)
		h, err := protocol.ParseBatchHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if protocol.BatchSize(b) != len(b) || uint32(h.CRC) != protocol.BatchCRC(b) {
			t.Fatal("control batch: bad size or CRC")
		}
		if h.ProducerID != 42 || h.ProducerEpoch != 3 || h.FirstSequence != -1 || h.NumRecords != 1 ||
			h.Attributes != protocol.AttrTransactional|protocol.AttrControl {
			t.Fatalf("control batch header %+v", h)
		}
		typ, err := protocol.ParseControlBatch(b)
		want := protocol.ControlAbort
		if commit {
			want = protocol.ControlCommit
		}
		if err != nil || typ != want {
			t.Fatalf("ParseControlBatch: %d %v, want %d", typ, err, want)
		}
		// Clients may not produce them.
		if _, err := protocol.NewCodecs().ValidateProduceBatch(b, protocol.ValidateConfig{Version: 9}); !errors.Is(err, protocol.ErrInvalidBatch) {
			t.Fatal("a control batch passed produce validation")
		}
	}
	if _, err := protocol.ParseControlBatch(protocol.NewControlBatch(1, 0, true, 0, 0)[:protocol.BatchHeaderSize+3]); err == nil {
		t.Fatal("a cut control batch parsed")
	}
}
