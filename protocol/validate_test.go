package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/gregorbroker/gregor/internal/race"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// lenient accepts any timestamp: tests of structure use it.
var lenient = ValidateConfig{Version: 13, TimestampBeforeMaxMs: math.MaxInt64, TimestampAfterMaxMs: math.MaxInt64}

// vrec is one hand-encoded record; fields left at their zero value are
// encoded as a producer would, and raw fields replace the encoding.
type vrec struct {
	tsDelta     int64
	offsetDelta int32
	key, value  []byte // nil: null
	headers     []kmsg.Header
	// length, when not 0, replaces the computed length (a lie).
	length int32
	// body, when not nil, replaces everything after the length.
	body []byte
	// extra bytes appended inside the record (counted by the length).
	extra []byte
}

func appendVarBytes(b, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(b, -1)
	}
	return append(binary.AppendVarint(b, int64(len(v))), v...)
}

func (r vrec) encode() []byte {
	body := r.body
	if body == nil {
		body = []byte{0} // attributes
		body = binary.AppendVarint(body, r.tsDelta)
		body = binary.AppendVarint(body, int64(r.offsetDelta))
		body = appendVarBytes(body, r.key)
		body = appendVarBytes(body, r.value)
		body = binary.AppendVarint(body, int64(len(r.headers)))
		for _, h := range r.headers {
			body = appendVarBytes(body, []byte(h.Key))
			body = appendVarBytes(body, h.Value)
		}
		body = append(body, r.extra...)
	}
	l := int64(len(body))
	if r.length != 0 {
		l = int64(r.length)
	}
	return append(binary.AppendVarint(nil, l), body...)
}

// okRecs returns n well-formed records with keys.
func okRecs(n int) []vrec {
	out := make([]vrec, n)
	for i := range out {
		out[i] = vrec{tsDelta: int64(i), offsetDelta: int32(i), key: fmt.Appendf(nil, "k%d", i), value: fmt.Appendf(nil, "value-%d", i),
			headers: []kmsg.Header{{Key: "h", Value: []byte{byte(i)}}}}
	}
	return out
}

func section(recs []vrec) []byte {
	var b []byte
	for _, r := range recs {
		b = append(b, r.encode()...)
	}
	return b
}

// vbatch is a batch header for mkBatch; count -1 means len(recs).
type vbatch struct {
	codec     Codec
	count     int32
	lastDelta int32 // -2: count-1
	firstTs   int64
	maxTs     int64 // 0: firstTs + the largest delta
	attrs     uint16
	pid       int64
	seq       int32
}

// mkBatch encodes a batch around a records section (compressed with the
// header's codec), with a correct length and CRC.
func mkBatch(t testing.TB, hd vbatch, sec []byte, n int) []byte {
	t.Helper()
	c := NewCodecs()
	body := sec
	if hd.codec != CodecNone {
		var err error
		if body, err = c.Compress(hd.codec, sec); err != nil {
			t.Fatal(err)
		}
	}
	if hd.count == -1 {
		hd.count = int32(n)
	}
	if hd.lastDelta == -2 {
		hd.lastDelta = hd.count - 1
	}
	b := make([]byte, BatchHeaderSize, BatchHeaderSize+len(body))
	be := binary.BigEndian
	be.PutUint32(b[8:], uint32(BatchHeaderSize-12+len(body)))
	be.PutUint32(b[12:], math.MaxUint32)
	b[16] = 2
	be.PutUint16(b[21:], uint16(hd.codec)|hd.attrs)
	be.PutUint32(b[23:], uint32(hd.lastDelta))
	be.PutUint64(b[27:], uint64(hd.firstTs))
	be.PutUint64(b[35:], uint64(hd.maxTs))
	be.PutUint64(b[43:], uint64(hd.pid))
	be.PutUint16(b[51:], math.MaxUint16)
	be.PutUint32(b[53:], uint32(hd.seq))
	be.PutUint32(b[57:], uint32(hd.count))
	b = append(b, body...)
	return fixCRC(b)
}

// plainHeader is the header of a non-idempotent producer's batch.
func plainHeader(codec Codec) vbatch {
	return vbatch{codec: codec, count: -1, lastDelta: -2, firstTs: 1000, maxTs: 1000, pid: -1, seq: -1}
}

func lying(t testing.TB, codec Codec, recs []vrec, edit func(*vbatch)) []byte {
	hd := plainHeader(codec)
	if edit != nil {
		edit(&hd)
	}
	return mkBatch(t, hd, section(recs), len(recs))
}

// withRec returns okRecs(3) with record i replaced.
func withRec(i int, r vrec) []vrec {
	recs := okRecs(3)
	recs[i] = r
	return recs
}

type validateCase struct {
	batch  []byte
	cfg    *ValidateConfig // nil: lenient
	want   error           // nil: valid
	record int32           // the record named in RecordErrors, -1 for none
}

// structureCases are lying record sections, built with codec.
func structureCases(t testing.TB, codec Codec) map[string]validateCase {
	ok := okRecs(3)
	inv := func(b []byte, rec int32) validateCase {
		return validateCase{batch: b, want: ErrInvalidBatch, record: rec}
	}
	return map[string]validateCase{
		"valid":            {batch: lying(t, codec, ok, nil), record: -1},
		"count too high":   inv(lying(t, codec, ok, func(h *vbatch) { h.count, h.lastDelta = 4, 3 }), -1),
		"count 2^30":       inv(lying(t, codec, ok, func(h *vbatch) { h.count, h.lastDelta = 1<<30, 1<<30-1 }), -1),
		"count too low":    inv(lying(t, codec, ok, func(h *vbatch) { h.count, h.lastDelta = 2, 1 }), -1),
		"no records":       inv(mkBatch(t, plainHeader(codec), nil, 1), -1),
		"deltas swapped":   inv(lying(t, codec, []vrec{ok[0], ok[2], ok[1]}, nil), 1),
		"deltas from one":  inv(lying(t, codec, withRec(0, vrec{offsetDelta: 1, key: []byte("k")}), nil), 0),
		"delta repeated":   inv(lying(t, codec, withRec(2, vrec{offsetDelta: 1, key: []byte("k")}), nil), 2),
		"length past end":  inv(lying(t, codec, append(okRecs(2), vrec{offsetDelta: 2, key: []byte("k"), length: 200}), nil), 2),
		"length short":     inv(lying(t, codec, withRec(1, vrec{offsetDelta: 1, key: []byte("key"), value: []byte("v"), length: 6}), nil), 1),
		"length negative":  inv(lying(t, codec, withRec(0, vrec{key: []byte("k"), length: -3}), nil), 0),
		"length tiny":      inv(lying(t, codec, withRec(0, vrec{length: 2, body: []byte{0, 0}}), nil), 0),
		"extra in record":  inv(lying(t, codec, withRec(1, vrec{offsetDelta: 1, key: []byte("k"), extra: []byte{0xAA}}), nil), 1),
		"bytes after last": inv(mkBatch(t, plainHeader(codec), append(section(ok), 0), 3), -1),
		"header cut":       inv(mkBatch(t, plainHeader(codec), append(section(ok[:2]), 0x80), 3), 2),
		"body cut":         inv(mkBatch(t, plainHeader(codec), section(ok)[:len(section(ok))-2], 3), 2),
		"headers lie":      inv(lying(t, codec, withRec(1, vrec{offsetDelta: 1, body: []byte{0, 2, 2, 1, 1, 0xc8, 0x01}}), nil), 1),
		"headers negative": inv(lying(t, codec, withRec(1, vrec{offsetDelta: 1, body: []byte{0, 2, 2, 1, 1, 3}}), nil), 1),
		"header key neg":   inv(lying(t, codec, withRec(1, vrec{offsetDelta: 1, body: []byte{0, 2, 2, 1, 1, 2, 3, 1}}), nil), 1),
		"header val past":  inv(lying(t, codec, withRec(1, vrec{offsetDelta: 1, body: []byte{0, 2, 2, 1, 1, 2, 2, 'h', 40}}), nil), 1),
		"one header short": inv(lying(t, codec, withRec(1, vrec{offsetDelta: 1, body: []byte{0, 2, 2, 1, 1, 4, 2, 'h', 1}}), nil), 1),
		"key past end":     inv(lying(t, codec, withRec(0, vrec{body: []byte{0, 0, 0, 100, 'k', 1, 0}}), nil), 0),
		"value past end":   inv(lying(t, codec, withRec(0, vrec{body: []byte{0, 0, 0, 1, 100, 'v', 0}}), nil), 0),
		"key length -5":    inv(lying(t, codec, withRec(0, vrec{body: []byte{0, 0, 0, 9, 1, 0}}), nil), 0),
		"length overflow":  inv(mkBatch(t, plainHeader(codec), append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, section(ok)...), 3), 0),
		"length 5th byte":  inv(mkBatch(t, plainHeader(codec), append([]byte{0xff, 0xff, 0xff, 0xff, 0x1f}, section(ok)...), 3), 0),
		"ts overflow":      inv(lying(t, codec, withRec(0, vrec{body: append(append([]byte{0}, bytes.Repeat([]byte{0xff}, 10)...), 0, 1, 1, 0)}), nil), 0),
		"delta overflow":   inv(lying(t, codec, withRec(0, vrec{body: []byte{0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 1, 0}}), nil), 0),
		"non-minimal":      inv(lying(t, codec, withRec(0, vrec{body: []byte{0, 0, 0x80, 0x00, 1, 1, 0}}), nil), 0),
	}
}

func checkValidate(t *testing.T, c *Codecs, name string, tc validateCase) {
	t.Helper()
	cfg := lenient
	if tc.cfg != nil {
		cfg = *tc.cfg
	}
	v, err := c.ValidateProduceBatch(tc.batch, cfg)
	if tc.want == nil {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if v.Header.NumRecords < 1 {
			t.Errorf("%s: valid with header %+v", name, v.Header)
		}
		return
	}
	var ve *ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, tc.want) {
		t.Errorf("%s: %v, want %v", name, err, tc.want)
		return
	}
	switch {
	case tc.record < 0 && len(ve.Records) != 0:
		t.Errorf("%s: record errors %+v for a batch-level failure (%v)", name, ve.Records, err)
	case tc.record >= 0 && (len(ve.Records) != 1 || ve.Records[0].BatchIndex != tc.record):
		t.Errorf("%s: record errors %+v, want record %d (%v)", name, ve.Records, tc.record, err)
	}
}

func TestValidateRecordStructure(t *testing.T) {
	c := NewCodecs()
	for _, codec := range append([]Codec{CodecNone}, allCodecs...) {
		t.Run(codec.String(), func(t *testing.T) {
			for name, tc := range structureCases(t, codec) {
				checkValidate(t, c, name, tc)
			}
		})
	}
}

func TestValidateBatchHeader(t *testing.T) {
	c := NewCodecs()
	good := mustBuild(t, c, CodecNone, 1000, testRecords(4))
	zstdGood := mustBuild(t, c, CodecZstd, 1000, testRecords(4))
	inv := func(b []byte) validateCase { return validateCase{batch: b, want: ErrInvalidBatch, record: -1} }
	corrupt := func(b []byte) validateCase { return validateCase{batch: b, want: ErrCorruptBatch, record: -1} }
	codec := func(b []byte) validateCase { return validateCase{batch: b, want: ErrUnsupportedCodec, record: -1} }
	be := binary.BigEndian
	v6 := lenient
	v6.Version = 6
	v7 := lenient
	v7.Version = 7
	cases := map[string]validateCase{
		"good":            {batch: good, record: -1},
		"good zstd":       {batch: zstdGood, record: -1},
		"zstd v7":         {batch: zstdGood, cfg: &v7, record: -1},
		"zstd v6":         {batch: zstdGood, cfg: &v6, want: ErrUnsupportedCodec, record: -1},
		"gzip v6":         {batch: mustBuild(t, c, CodecGzip, 1000, testRecords(4)), cfg: &v6, record: -1},
		"leader epoch":    {batch: edit(good, func(b []byte) { SetPartitionLeaderEpoch(b, 3) }), record: -1},
		"empty":           inv(nil),
		"eleven bytes":    inv(good[:11]),
		"sixteen bytes":   inv(good[:16]),
		"header cut":      inv(good[:BatchHeaderSize-1]),
		"truncated":       inv(good[:len(good)-1]),
		"length big":      inv(edit(good, func(b []byte) { be.PutUint32(b[8:], uint32(len(b))) })),
		"length low":      corrupt(edit(good, func(b []byte) { be.PutUint32(b[8:], batchLengthOverhead-1) })),
		"length 14":       corrupt(edit(good, func(b []byte) { be.PutUint32(b[8:], 14) })),
		"length neg":      corrupt(edit(good, func(b []byte) { be.PutUint32(b[8:], 0xffffffff) })),
		"magic 3":         corrupt(edit(good, func(b []byte) { b[16] = 3 })),
		"magic -1":        corrupt(edit(good, func(b []byte) { b[16] = 0xff })),
		"magic 1":         inv(edit(good, func(b []byte) { b[16] = 1 })),
		"magic 0":         inv(edit(good, func(b []byte) { b[16] = 0 })),
		"two":             inv(append(append([]byte(nil), good...), good...)),
		"trailing":        inv(append(append([]byte(nil), good...), 0)),
		"base offset":     inv(edit(good, func(b []byte) { SetBaseOffset(b, 99) })),
		"bad crc":         corrupt(edit(good, func(b []byte) { b[len(b)-1] ^= 1 })),
		"crc field":       corrupt(edit(good, func(b []byte) { b[18] ^= 0x80 })),
		"codec 5":         codec(edit(good, func(b []byte) { b[22] = 5; fixCRC(b) })),
		"codec 7":         codec(edit(good, func(b []byte) { b[22] = 7; fixCRC(b) })),
		"count zero":      inv(edit(good, func(b []byte) { be.PutUint32(b[57:], 0); fixCRC(b) })),
		"count negative":  inv(edit(good, func(b []byte) { be.PutUint32(b[57:], 0xffffffff); be.PutUint32(b[23:], 0xfffffffe); fixCRC(b) })),
		"delta negative":  inv(edit(good, func(b []byte) { be.PutUint32(b[23:], 0xffffffff); fixCRC(b) })),
		"delta off":       inv(edit(good, func(b []byte) { be.PutUint32(b[23:], 2); fixCRC(b) })),
		"control":         inv(edit(good, func(b []byte) { b[22] |= AttrControl; fixCRC(b) })),
		"pid without seq": inv(edit(good, func(b []byte) { be.PutUint64(b[43:], 7); fixCRC(b) })),
		"pid with seq":    {batch: edit(good, func(b []byte) { be.PutUint64(b[43:], 7); be.PutUint32(b[53:], 0); fixCRC(b) }), record: -1},
		"not gzip":        corrupt(edit(good, func(b []byte) { b[22] = byte(CodecGzip); fixCRC(b) })),
		"not snappy":      corrupt(edit(good, func(b []byte) { b[22] = byte(CodecSnappy); fixCRC(b) })),
		"not lz4":         corrupt(edit(good, func(b []byte) { b[22] = byte(CodecLz4); fixCRC(b) })),
		"not zstd":        corrupt(edit(good, func(b []byte) { b[22] = byte(CodecZstd); fixCRC(b) })),
	}
	for name, tc := range cases {
		checkValidate(t, c, name, tc)
	}
	// Every codec, cut short or with garbage for data, is corrupt.
	for _, codec := range allCodecs {
		b := mustBuild(t, c, codec, 1000, testRecords(40))
		cut := fixCRC(edit(b, func(b []byte) {}))[:len(b)-7]
		binary.BigEndian.PutUint32(cut[8:], uint32(len(cut)-12))
		checkValidate(t, c, codec.String()+" cut", corrupt(fixCRC(cut)))
		garbage := edit(b, func(b []byte) {
			for i := BatchHeaderSize + 8; i < len(b); i += 3 {
				b[i] ^= 0x5a
			}
		})
		if _, err := c.ValidateProduceBatch(fixCRC(garbage), lenient); !errors.Is(err, ErrCorruptBatch) && !errors.Is(err, ErrInvalidBatch) {
			t.Errorf("%s garbage: %v", codec, err)
		}
	}
}

func TestValidateXerial(t *testing.T) {
	c := NewCodecs()
	recs := testRecords(30)
	plain := mustBuild(t, c, CodecNone, 5, recs)
	for _, chunk := range []int{1, 7, 256, 1 << 20} {
		b := append([]byte(nil), plain[:BatchHeaderSize]...)
		b = append(b, xerialFrame(plain[BatchHeaderSize:], chunk)...)
		binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
		binary.BigEndian.PutUint16(b[21:], uint16(CodecSnappy))
		fixCRC(b)
		if _, err := c.ValidateProduceBatch(b, lenient); err != nil {
			t.Fatalf("chunks of %d: %v", chunk, err)
		}
		// A chunk length past the end is corrupt.
		bad := append([]byte(nil), b...)
		binary.BigEndian.PutUint32(bad[BatchHeaderSize+xerialHeaderSize:], 1<<30)
		if _, err := c.ValidateProduceBatch(fixCRC(bad), lenient); !errors.Is(err, ErrCorruptBatch) {
			t.Fatalf("chunks of %d, lying chunk length: %v", chunk, err)
		}
	}
}

func TestValidateTimestamps(t *testing.T) {
	c := NewCodecs()
	const now = 1_700_000_000_000
	kafkaDefaults := ValidateConfig{Version: 9, NowMs: now, TimestampBeforeMaxMs: math.MaxInt64, TimestampAfterMaxMs: 3600000}
	day := kafkaDefaults
	day.TimestampBeforeMaxMs = 86400000
	lat := kafkaDefaults
	lat.LogAppendTime = true
	compacted := lenient
	compacted.Compacted = true

	at := func(first int64, deltas ...int64) []byte {
		recs := make([]vrec, len(deltas))
		for i, d := range deltas {
			recs[i] = vrec{tsDelta: d, offsetDelta: int32(i), key: []byte("k")}
		}
		hd := plainHeader(CodecNone)
		hd.firstTs, hd.maxTs = first, first
		return mkBatch(t, hd, section(recs), len(recs))
	}
	ts := func(b []byte, cfg ValidateConfig, rec int32) validateCase {
		return validateCase{batch: b, cfg: &cfg, want: ErrInvalidTimestamp, record: rec}
	}
	cases := map[string]validateCase{
		"now":                 {batch: at(now, 0, 1, 2), cfg: &kafkaDefaults, record: -1},
		"an hour ahead":       {batch: at(now, 0, 3600000), cfg: &kafkaDefaults, record: -1},
		"past the hour":       ts(at(now, 0, 3600001), kafkaDefaults, 1),
		"ancient, default":    {batch: at(1, 0, 1), cfg: &kafkaDefaults, record: -1},
		"a day old":           {batch: at(now-86400000, 0), cfg: &day, record: -1},
		"older than a day":    ts(at(now-86400001, 0, 5), day, 0),
		"no timestamp":        {batch: at(-1, 0), cfg: &day, record: -1},
		"log append topic":    {batch: at(now+1e9, 0, 1), cfg: &lat, record: -1},
		"delta wraps":         ts(at(now, 0, math.MaxInt64), kafkaDefaults, 1),
		"log append bit":      ts(edit(at(now, 0), func(b []byte) { b[22] |= AttrLogAppendTime; fixCRC(b) }), kafkaDefaults, 0),
		"log append bit, lat": ts(edit(at(now, 0), func(b []byte) { b[22] |= AttrLogAppendTime; fixCRC(b) }), lat, 0),
		"compacted, keys":     {batch: at(now, 0, 1), cfg: &compacted, record: -1},
		"compacted, no key": {batch: lying(t, CodecLz4, withRec(1, vrec{offsetDelta: 1, value: []byte("v")}), nil),
			cfg: &compacted, want: ErrInvalidBatch, record: 1},
	}
	for name, tc := range cases {
		checkValidate(t, c, name, tc)
	}

	// Every record at fault is named, up to maxRecordErrors.
	deltas := make([]int64, 50)
	for i := range deltas {
		deltas[i] = int64(i) * 10_000_000
	}
	_, err := c.ValidateProduceBatch(at(now, deltas...), kafkaDefaults)
	var ve *ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidTimestamp) || len(ve.Records) != maxRecordErrors || ve.Records[0].BatchIndex != 1 {
		t.Fatalf("50 records, 49 ahead: %v %+v", err, ve)
	}

	// The largest record timestamp is reported whatever the header says.
	b := at(now, 5, -3, 9, 2)
	v, err := c.ValidateProduceBatch(b, kafkaDefaults)
	if err != nil || v.MaxTimestamp != now+9 {
		t.Fatalf("max timestamp %d, %v", v.MaxTimestamp, err)
	}
	SetMaxTimestamp(b, v.MaxTimestamp)
	if h, err := CheckBatch(b); err != nil || h.MaxTimestamp != now+9 {
		t.Fatalf("after SetMaxTimestamp: %+v %v", h, err)
	}
}

// TestValidateBomb checks that a batch decompressing past the limit is
// refused as INVALID_RECORD, and that walking one that stays within it
// costs memory independent of its size.
func TestValidateBomb(t *testing.T) {
	big := make([]byte, 24<<20)
	rec := vrec{key: []byte("k"), value: big}
	sec := section([]vrec{rec})
	small := NewCodecsLimit(4 << 20)
	c := NewCodecs()
	for _, codec := range allCodecs {
		b := mkBatch(t, plainHeader(codec), sec, 1)
		_, err := small.ValidateProduceBatch(b, lenient)
		var ve *ValidationError
		if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidBatch) || !errors.Is(err, ErrDecompressedTooLarge) {
			t.Errorf("%s, %d compressed bytes to 24 MiB, limit 4 MiB: %v", codec, len(b), err)
		}
		if codec == CodecSnappy {
			continue // a snappy block is decoded whole (within the limit)
		}
		if codec == CodecZstd {
			// A streamed frame's window bounds what the decoder holds.
			b = append(b[:BatchHeaderSize:BatchHeaderSize], zstdStream(t, sec)...)
			binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
			fixCRC(b)
		}
		if _, err := c.ValidateProduceBatch(b, lenient); err != nil { // warm the pools
			t.Fatalf("%s within the limit: %v", codec, err)
		}
		var v Validated
		n := allocated(func() { v, err = c.ValidateProduceBatch(b, lenient) })
		if err != nil || v.RecordsSize != int64(len(sec)) {
			t.Fatalf("%s: %d bytes, %v", codec, v.RecordsSize, err)
		}
		if n > 12<<20 {
			t.Errorf("%s: validating 24 MiB of records allocated %d bytes", codec, n)
		}
	}
}

func TestSetMaxTimestamp(t *testing.T) {
	b := mustBuild(t, NewCodecs(), CodecLz4, 1000, testRecords(3))
	before := append([]byte(nil), b...)
	h, _ := CheckBatch(b)
	SetMaxTimestamp(b, h.MaxTimestamp)
	if !bytes.Equal(b, before) {
		t.Fatal("setting the same max timestamp changed the batch")
	}
	SetMaxTimestamp(b, 77)
	if h, err := CheckBatch(b); err != nil || h.MaxTimestamp != 77 || h.Attributes != int16(CodecLz4) {
		t.Fatalf("%+v %v", h, err)
	}
}

// TestValidateAgreesWithRecords: what validation accepts, Records reads
// back whole, with the same count and offsets.
func TestValidateAgreesWithRecords(t *testing.T) {
	c := NewCodecs()
	for _, codec := range append([]Codec{CodecNone}, allCodecs...) {
		for _, n := range []int{1, 2, 17, 300} {
			b := mustBuild(t, c, codec, 1_700_000_000_000, testRecords(n))
			v, err := c.ValidateProduceBatch(b, lenient)
			if err != nil {
				t.Fatalf("%s/%d: %v", codec, n, err)
			}
			recs, err := c.RecordsAt(b)
			if err != nil || len(recs) != n {
				t.Fatalf("%s/%d: Records %d, %v", codec, n, len(recs), err)
			}
			maxTs := int64(-1)
			for _, r := range recs {
				maxTs = max(maxTs, r.Timestamp)
			}
			if v.MaxTimestamp != maxTs || v.MaxTimestamp != v.Header.MaxTimestamp {
				t.Fatalf("%s/%d: max timestamp %d, records' %d, header %d", codec, n, v.MaxTimestamp, maxTs, v.Header.MaxTimestamp)
			}
		}
	}
}

func TestValidateAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("sync.Pool drops items on purpose under -race; allocation counts are measured without it (make unit runs this test a second time without -race)")
	}
	c := NewCodecs()
	for _, codec := range append([]Codec{CodecNone}, allCodecs...) {
		b := mustBuild(t, c, codec, 0, testRecords(200))
		n := testing.AllocsPerRun(20, func() {
			if _, err := c.ValidateProduceBatch(b, lenient); err != nil {
				t.Fatal(err)
			}
		})
		// A stream costs a few allocations of codec state; the records
		// themselves none.
		if limit := map[Codec]float64{CodecNone: 0, CodecSnappy: 0}[codec]; codec == CodecNone || codec == CodecSnappy {
			if n > limit {
				t.Errorf("%s: %.1f allocations per validation", codec, n)
			}
		} else if n > 20 {
			t.Errorf("%s: %.1f allocations per validation", codec, n)
		}
	}
}
