// Produce-path validation of record batches.
//
// Codecs.ValidateProduceBatch checks one partition's records from a
// Produce request the way Kafka does before appending (KafkaApis'
// ProduceRequest.validateRecords, UnifiedLog.analyzeAndValidateRecords
// and LogValidator), in this order, each failure with Kafka's error:
//
//	check                                                    error
//	at least one whole batch (12-byte prefix, length fits)   INVALID_RECORD
//	length field at least the v2 header (49)                 CORRUPT_MESSAGE
//	magic 2 (0 and 1: INVALID_RECORD; other values corrupt)  INVALID_RECORD / CORRUPT_MESSAGE
//	exactly one batch, nothing after it                      INVALID_RECORD
//	zstd only from Produce v7                                UNSUPPORTED_COMPRESSION_TYPE
//	base offset 0                                            INVALID_RECORD
//	CRC-32C                                                  CORRUPT_MESSAGE
//	codec 0-4                                                UNSUPPORTED_COMPRESSION_TYPE
//	last offset delta >= 0, record count > 0, delta+1 == count  INVALID_RECORD
//	not a control batch                                      INVALID_RECORD
//	producer id set => base sequence >= 0                    INVALID_RECORD
//	records (decompressed as a stream, see below):
//	  the compressed stream decodes                          CORRUPT_MESSAGE
//	  it decodes to at most the Codecs limit                 INVALID_RECORD
//	  exactly count records, nothing after the last          INVALID_RECORD
//	  each record's length varint fits, its fields
//	  (attributes, timestamp delta, offset delta, key,
//	  value, header count, headers) take exactly that length  INVALID_RECORD
//	  offset deltas 0, 1, ..., count-1                       INVALID_RECORD
//	  compacted topic: every record has a key                INVALID_RECORD (record errors)
//	  timestamp type bit not LogAppendTime                   INVALID_TIMESTAMP (record errors)
//	  CreateTime topic: each record's timestamp (unless -1)
//	  within [now - message.timestamp.before.max.ms,
//	          now + message.timestamp.after.max.ms]          INVALID_TIMESTAMP (record errors)
//
// A structural failure stops the walk at the record that has it; the
// per-record rules (key, timestamp) are checked for every record and
// reported together, as Kafka's RecordErrors are.
//
// Where Gregor differs from Kafka, it refuses rather than repairs or
// ignores, because it stores batches exactly as sent:
//   - Kafka rewrites (recompresses) a compressed batch whose offset deltas
//     are not 0..n-1 and does not look at them in an uncompressed one;
//     Gregor refuses both (every magic-2 client writes 0..n-1).
//   - Kafka drops bytes after the first batch that do not form a whole
//     second batch; Gregor refuses any.
//   - Kafka answers an unknown codec with UNKNOWN_SERVER_ERROR (its codec
//     id fails to parse) and corrupt compressed data with
//     UNKNOWN_SERVER_ERROR ("Failed to decompress record stream");
//     Gregor answers UNSUPPORTED_COMPRESSION_TYPE and CORRUPT_MESSAGE.
//   - Kafka reads a batch with the LogAppendTime bit into a CreateTime
//     topic as long as its max timestamp is in range, then clears the
//     bit; Gregor refuses it (INVALID_TIMESTAMP, as Kafka does for
//     LogAppendTime topics).
//   - Kafka bounds decompression by nothing but the record count; Gregor
//     by the Codecs limit (MaxDecompressedSize, 256 MiB, by default).
//   - Kafka reads varints that are longer than they need be, and lengths
//     below -1 as null; Gregor refuses both (no client writes them, and
//     what is stored must read back the same through Records).
//
// The batch's max timestamp is not checked: for CreateTime topics Kafka
// overwrites it with the largest record timestamp, which Validated
// carries (see SetMaxTimestamp).
//
// Records are walked in place, never decoded into kmsg.Record values: an
// uncompressed section directly over the request bytes, a compressed one
// through a fixed window (validateWindow) as the decompressor produces
// it. Nothing decompressed is kept, so a batch of any expansion costs the
// window plus the codec's own state (see compression.go); only snappy,
// whose block format needs its whole output, decodes a block at once.
package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrInvalidTimestamp means a record's timestamp is outside the topic's
// message.timestamp.before/after.max.ms or the producer set the
// LogAppendTime bit (INVALID_TIMESTAMP).
var ErrInvalidTimestamp = errors.New("protocol: invalid record timestamp")

// maxRecordErrors bounds the RecordErrors one refusal carries (Kafka
// lists every record at fault; a batch of 100k bad records would make a
// response of megabytes).
const maxRecordErrors = 20

// validateWindow is the buffer a compressed section is walked through.
const validateWindow = 32 << 10

// noTimestamp is Kafka's RecordBatch.NO_TIMESTAMP.
const noTimestamp = -1

// ValidateConfig is what produce validation needs from the request, the
// topic and the clock.
type ValidateConfig struct {
	// Version is the Produce request version (zstd needs v7+).
	Version int16
	// NowMs is the broker's time, in Unix milliseconds.
	NowMs int64
	// LogAppendTime is set when the topic's message.timestamp.type is
	// LogAppendTime: record timestamps are then not checked.
	LogAppendTime bool
	// TimestampBeforeMaxMs and TimestampAfterMaxMs are the topic's
	// message.timestamp.before.max.ms and message.timestamp.after.max.ms.
	TimestampBeforeMaxMs int64
	TimestampAfterMaxMs  int64
	// Compacted is set when the topic's cleanup.policy includes compact:
	// every record must have a key.
	Compacted bool
}

// Validated describes a batch that passed validation.
type Validated struct {
	// Header is the batch header; its Records field aliases the input.
	Header kmsg.RecordBatch
	// MaxTimestamp is the largest record timestamp (-1 when every
	// record's is -1), what Kafka stores as a CreateTime batch's max
	// timestamp.
	MaxTimestamp int64
	// RecordsSize is the size of the (decompressed) records section.
	RecordsSize int64
}

// RecordError names one record a refusal is about, as Produce v8+
// reports it (BatchIndex is the record's index in the batch).
type RecordError struct {
	BatchIndex int32
	Message    string
}

// ValidationError is a batch refused by ValidateProduceBatch.
// errors.Is(err, Kind) holds, and errors.Is with the underlying cause
// (ErrDecompressedTooLarge, say) when there is one.
type ValidationError struct {
	// Kind is ErrCorruptBatch, ErrInvalidBatch, ErrInvalidTimestamp or
	// ErrUnsupportedCodec.
	Kind error
	// Message says what is wrong, in Kafka's terms.
	Message string
	// Records are the records at fault (at most maxRecordErrors), empty
	// for batch-level failures.
	Records []RecordError
	cause   error
}

func (e *ValidationError) Error() string { return e.Kind.Error() + ": " + e.Message }

// Unwrap returns the kind and the cause.
func (e *ValidationError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.Kind, e.cause}
	}
	return []error{e.Kind}
}

func refuse(kind error, format string, args ...any) *ValidationError {
	return &ValidationError{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// refuseAt is a structural failure of record i.
func refuseAt(i int32, format string, args ...any) *ValidationError {
	msg := fmt.Sprintf(format, args...)
	return &ValidationError{Kind: ErrInvalidBatch, Message: fmt.Sprintf("record %d: %s", i, msg),
		Records: []RecordError{{BatchIndex: i, Message: msg}}}
}

// CheckBatch checks that b is exactly one whole magic-2 batch whose CRC
// matches, and returns its header (Records aliases b). It is the
// integrity part of ValidateProduceBatch, for bytes that carry no
// client-origin rules (tests, or batches the broker edited).
func CheckBatch(b []byte) (kmsg.RecordBatch, error) {
	h, err := checkFraming(b)
	if err != nil {
		return h, err
	}
	if err := checkCRC(b, &h); err != nil {
		return h, err
	}
	return h, nil
}

// checkFraming is the first group of checks: one whole magic-2 batch.
func checkFraming(b []byte) (kmsg.RecordBatch, error) {
	var h kmsg.RecordBatch
	if len(b) < 12 {
		return h, refuse(ErrInvalidBatch, "produce takes one record batch per partition, got %d bytes", len(b))
	}
	length := int32(binary.BigEndian.Uint32(b[8:]))
	if length < batchLengthOverhead {
		return h, refuse(ErrCorruptBatch, "batch length %d is less than the magic-2 header's %d", length, batchLengthOverhead)
	}
	if len(b) < 17 {
		return h, refuse(ErrInvalidBatch, "produce takes one record batch per partition, got %d bytes", len(b))
	}
	if magic := int8(b[16]); magic < 0 || magic > 2 {
		return h, refuse(ErrCorruptBatch, "invalid magic %d", magic)
	}
	if int64(length)+12 > int64(len(b)) {
		return h, refuse(ErrInvalidBatch, "batch length %d with %d bytes present: no whole record batch", length, len(b)-12)
	}
	if magic := int8(b[16]); magic != 2 {
		return h, refuse(ErrInvalidBatch, "magic %d: produce v3+ takes only magic 2 batches", magic)
	}
	if size := int(length) + 12; size != len(b) {
		return h, refuse(ErrInvalidBatch, "%d bytes after the batch: produce takes exactly one record batch per partition", len(b)-size)
	}
	if err := h.UnsafeReadFrom(b); err != nil {
		return h, refuse(ErrCorruptBatch, "header: %v", err)
	}
	return h, nil
}

func checkCRC(b []byte, h *kmsg.RecordBatch) error {
	if got := BatchCRC(b); got != uint32(h.CRC) {
		return refuse(ErrCorruptBatch, "record is corrupt (stored crc %08x, computed %08x)", uint32(h.CRC), got)
	}
	return nil
}

// ValidateProduceBatch checks one partition's records from a Produce
// request, as described at the top of this file, and returns what the
// append needs. b is not modified. Every failure is a *ValidationError.
func (c *Codecs) ValidateProduceBatch(b []byte, cfg ValidateConfig) (Validated, error) {
	var v Validated
	h, err := checkFraming(b)
	v.Header = h
	if err != nil {
		return v, err
	}
	codec := Codec(h.Attributes & AttrCompressionMask)
	if codec == CodecZstd && cfg.Version < 7 {
		return v, refuse(ErrUnsupportedCodec, "produce v%d may not use zstd (v7+)", cfg.Version)
	}
	if h.FirstOffset != 0 {
		return v, refuse(ErrInvalidBatch, "the base offset of a produced batch must be 0, not %d", h.FirstOffset)
	}
	if err := checkCRC(b, &h); err != nil {
		return v, err
	}
	if codec > CodecZstd {
		return v, refuse(ErrUnsupportedCodec, "unknown compression codec %d", codec)
	}
	switch {
	case h.LastOffsetDelta < 0:
		return v, refuse(ErrInvalidBatch, "invalid offset range: last offset delta %d", h.LastOffsetDelta)
	case h.NumRecords <= 0:
		return v, refuse(ErrInvalidBatch, "invalid record count %d", h.NumRecords)
	case h.LastOffsetDelta != h.NumRecords-1:
		return v, refuse(ErrInvalidBatch, "last offset delta %d is inconsistent with the record count %d", h.LastOffsetDelta, h.NumRecords)
	case h.Attributes&AttrControl != 0:
		return v, refuse(ErrInvalidBatch, "clients may not write control batches")
	case h.ProducerID >= 0 && h.FirstSequence < 0:
		return v, refuse(ErrInvalidBatch, "invalid base sequence %d with producer id %d", h.FirstSequence, h.ProducerID)
	}

	w := walker{n: h.NumRecords, firstTs: h.FirstTimestamp, headerMaxTs: h.MaxTimestamp, cfg: cfg,
		logAppendBit: h.Attributes&AttrLogAppendTime != 0, maxTs: noTimestamp}
	if codec == CodecNone {
		w.src.buf = h.Records
		err = w.walk()
	} else {
		err = c.walkCompressed(&w, codec, h.Records)
	}
	if err != nil {
		return v, err
	}
	if err := w.semanticError(); err != nil {
		return v, err
	}
	v.MaxTimestamp = w.maxTs
	v.RecordsSize = w.src.off()
	return v, nil
}

// walkCompressed walks the records of a compressed section.
func (c *Codecs) walkCompressed(w *walker, codec Codec, data []byte) error {
	if int64(w.n)*minRecordSize > int64(c.limit) {
		return &ValidationError{Kind: ErrInvalidBatch, cause: ErrDecompressedTooLarge,
			Message: fmt.Sprintf("%d records cannot fit in the %d bytes a batch may decompress to", w.n, c.limit)}
	}
	var st stream
	if err := c.openStream(&st, codec, data, c.limit); err != nil {
		return streamError(codec, err, c.limit)
	}
	defer st.release()
	if st.inMem {
		w.src.buf = st.mem
		return w.walk()
	}
	win := c.window()
	defer c.windows.Put(win)
	w.src.r, w.src.win, w.src.buf, w.src.limit = st.r, win[:], win[:0], int64(c.limit)
	err := w.walk()
	w.src.r = nil // drop the reader and window, which go back to their pools
	if w.src.err != nil {
		// The stream failing explains whatever the walk saw.
		return streamError(codec, w.src.err, c.limit)
	}
	return err
}

// streamError reports a decompression failure.
func streamError(codec Codec, err error, limit int) error {
	if errors.Is(err, ErrDecompressedTooLarge) {
		return &ValidationError{Kind: ErrInvalidBatch, cause: ErrDecompressedTooLarge,
			Message: fmt.Sprintf("%s records decompress to more than %d bytes", codec, limit)}
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, ErrCorruptBatch.Error()+": ")
	return &ValidationError{Kind: ErrCorruptBatch, Message: fmt.Sprintf("%s records do not decompress: %s", codec, strings.TrimPrefix(msg, codec.String()+": ")), cause: err}
}

// walker checks the records of one batch.
type walker struct {
	n            int32 // declared record count
	firstTs      int64 // the header's first and max timestamps
	headerMaxTs  int64
	cfg          ValidateConfig
	src          recordSource
	logAppendBit bool
	maxTs        int64 // largest record timestamp so far

	// Per-record rule failures, reported together after the walk.
	badRecords int           // how many records broke one
	errs       []RecordError // the first maxRecordErrors of them
	badTs      bool          // one of them is a timestamp failure
}

// walk checks every record the header declares and that nothing follows
// the last. It returns the first structural failure.
func (w *walker) walk() error {
	n := w.n
	s := &w.src
	for i := range n {
		if !s.more(1) {
			return refuse(ErrInvalidBatch, "incorrect declared batch size: %d records declared, premature end of records after %d", n, i)
		}
		l, ok := s.varint()
		if !ok {
			return refuseAt(i, "record length varint is malformed or cut short")
		}
		if l < minRecordSize-1 {
			return refuseAt(i, "invalid record size %d", l)
		}
		if s.r == nil && int64(l) > int64(len(s.buf)-s.pos) {
			return refuseAt(i, "invalid record size: %d bytes expected in the record payload, only %d remain", l, len(s.buf)-s.pos)
		}
		start := s.off()
		end := start + int64(l)
		if !s.skip(1) { // attributes: unused in magic 2
			return refuseAt(i, "premature end of records")
		}
		tsDelta, ok := s.varlong()
		if !ok {
			return refuseAt(i, "timestamp delta varlong is malformed or cut short")
		}
		od, ok := s.varint()
		if !ok {
			return refuseAt(i, "offset delta varint is malformed or cut short")
		}
		if od != i {
			return refuseAt(i, "offset delta %d, want %d (offset deltas must run 0, 1, ... in order)", od, i)
		}
		keyLen, ok := w.bytesField(end)
		if !ok {
			return refuseAt(i, "key length is malformed or runs past the record's %d bytes", l)
		}
		if _, ok := w.bytesField(end); !ok {
			return refuseAt(i, "value length is malformed or runs past the record's %d bytes", l)
		}
		nh, ok := s.varint()
		if !ok {
			return refuseAt(i, "header count varint is malformed or cut short")
		}
		if nh < 0 || int64(nh)*2 > end-s.off() {
			return refuseAt(i, "invalid header count %d with %d record bytes left", nh, end-s.off())
		}
		for j := range nh {
			kl, ok := s.varint()
			if !ok || kl < 0 || int64(kl) > end-s.off() || !s.skip(int64(kl)) {
				return refuseAt(i, "header %d key is malformed or runs past the record", j)
			}
			if _, ok := w.bytesField(end); !ok {
				return refuseAt(i, "header %d value is malformed or runs past the record", j)
			}
		}
		if got := s.off() - start; got != int64(l) {
			return refuseAt(i, "invalid record size: %d bytes expected in the record payload, its fields take %d", l, got)
		}
		w.record(i, tsDelta, keyLen >= 0)
	}
	if s.more(1) {
		return refuse(ErrInvalidBatch, "incorrect declared batch size: bytes remain after the %d declared records", n)
	}
	return nil
}

// bytesField skips a varint-length-prefixed field (negative: null) that
// must end by end, and returns its length.
func (w *walker) bytesField(end int64) (int32, bool) {
	s := &w.src
	n, ok := s.varint()
	if !ok {
		return 0, false
	}
	if n == -1 {
		return -1, true // null
	}
	if n < 0 {
		return 0, false // Kafka reads these as null too; no client writes them
	}
	if int64(n) > end-s.off() {
		return 0, false
	}
	return n, s.skip(int64(n))
}

// record applies the per-record rules to record i of a sound structure.
func (w *walker) record(i int32, tsDelta int64, hasKey bool) {
	ts := w.firstTs + tsDelta // wraps as in Kafka
	if w.logAppendBit {
		ts = w.headerMaxTs // what a reader sees for every record
	}
	if ts > w.maxTs {
		w.maxTs = ts
	}
	cfg := &w.cfg
	switch {
	case cfg.Compacted && !hasKey:
		w.recordError(i, false, "compacted topic cannot accept a record without a key")
	case w.logAppendBit:
		w.recordError(i, true, "invalid timestamp type: producers may not set the LogAppendTime bit")
	case !cfg.LogAppendTime && ts != noTimestamp:
		lo, hi := satSub(cfg.NowMs, cfg.TimestampBeforeMaxMs), satAdd(cfg.NowMs, cfg.TimestampAfterMaxMs)
		if ts < lo || ts > hi {
			w.recordError(i, true, fmt.Sprintf("timestamp %d is out of range: it should be within [%d, %d]", ts, lo, hi))
		}
	}
}

func (w *walker) recordError(i int32, timestamp bool, msg string) {
	w.badRecords++
	w.badTs = w.badTs || timestamp
	if len(w.errs) < maxRecordErrors {
		w.errs = append(w.errs, RecordError{BatchIndex: i, Message: msg})
	}
}

// semanticError reports the per-record rule failures, if any.
func (w *walker) semanticError() error {
	if w.badRecords == 0 {
		return nil
	}
	e := &ValidationError{Kind: ErrInvalidBatch, Records: w.errs}
	if w.badTs {
		e.Kind = ErrInvalidTimestamp
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d records rejected", w.badRecords, w.n)
	for k, re := range w.errs[:min(3, len(w.errs))] {
		sep := ", first: "
		if k > 0 {
			sep = "; "
		}
		fmt.Fprintf(&b, "%srecord %d: %s", sep, re.BatchIndex, re.Message)
	}
	e.Message = b.String()
	return e
}

func satSub(a, b int64) int64 {
	if b > 0 && a < math.MinInt64+b {
		return math.MinInt64
	}
	return a - b
}

func satAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// recordSource is a records section being read: in place over buf when r
// is nil, or streamed from r through win.
type recordSource struct {
	buf  []byte // buf[pos:] is unread
	pos  int
	base int64 // stream offset of buf[0]

	// Streaming only.
	r     io.Reader
	win   []byte // backing array of buf
	limit int64  // most bytes r may yield
	eof   bool
	err   error // first failure of r other than EOF; sticky
}

// off is the offset of the next unread byte in the section.
func (s *recordSource) off() int64 { return s.base + int64(s.pos) }

// more reports whether at least n (at most 16) unread bytes are
// available, reading more from the stream if needed.
func (s *recordSource) more(n int) bool {
	if len(s.buf)-s.pos >= n {
		return true
	}
	if s.r == nil || s.eof || s.err != nil {
		return false
	}
	left := copy(s.win, s.buf[s.pos:])
	s.base += int64(s.pos)
	s.buf, s.pos = s.win[:left], 0
	for empty := 0; len(s.buf) < n; {
		m, err := s.r.Read(s.win[len(s.buf):])
		s.buf = s.win[:len(s.buf)+m]
		if s.base+int64(len(s.buf)) > s.limit {
			s.err = ErrDecompressedTooLarge
			return false
		}
		if err == io.EOF {
			s.eof = true
			break
		}
		if err != nil {
			s.err = err
			break
		}
		if m == 0 {
			if empty++; empty > 100 {
				s.err = io.ErrNoProgress
				break
			}
		}
	}
	return len(s.buf)-s.pos >= n
}

// skip consumes n bytes, reporting false if the section ends first.
func (s *recordSource) skip(n int64) bool {
	for {
		avail := int64(len(s.buf) - s.pos)
		if n <= avail {
			s.pos += int(n)
			return true
		}
		n -= avail
		s.pos = len(s.buf)
		if !s.more(1) {
			return false
		}
	}
}

// varint reads a zigzag varint of at most 5 bytes, as kbin does, in its
// shortest encoding (Kafka reads longer ones; no client writes them, and
// Records, which reads what Gregor stores, refuses them).
func (s *recordSource) varint() (int32, bool) {
	if s.pos < len(s.buf) { // one-byte fast path, small enough to inline
		if x := s.buf[s.pos]; x < 0x80 {
			s.pos++
			return int32(x>>1) ^ -int32(x&1), true
		}
	}
	return s.varintSlow()
}

func (s *recordSource) varintSlow() (int32, bool) {
	if len(s.buf)-s.pos < 5 {
		s.more(5) // fewer at the end of the section
	}
	v, n := kbin.Varint(s.buf[s.pos:])
	if n <= 0 || n > 1 && s.buf[s.pos+n-1] == 0 { // malformed or not minimal
		return 0, false
	}
	s.pos += n
	return v, true
}

// varlong reads a zigzag varlong of at most 10 bytes, as kbin does.
func (s *recordSource) varlong() (int64, bool) {
	if s.pos < len(s.buf) {
		if x := s.buf[s.pos]; x < 0x80 {
			s.pos++
			return int64(x>>1) ^ -int64(x&1), true
		}
	}
	return s.varlongSlow()
}

func (s *recordSource) varlongSlow() (int64, bool) {
	if len(s.buf)-s.pos < 10 {
		s.more(10)
	}
	v, n := kbin.Varlong(s.buf[s.pos:])
	if n <= 0 || n > 1 && s.buf[s.pos+n-1] == 0 {
		return 0, false
	}
	s.pos += n
	return v, true
}
