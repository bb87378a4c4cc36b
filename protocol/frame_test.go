package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func sizePrefixed(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func TestReadFrameRoundTrip(t *testing.T) {
	const max = 1000
	bodies := [][]byte{{}, {1}, bytes.Repeat([]byte("ab"), 50), make([]byte, max)}
	var stream []byte
	for _, b := range bodies {
		stream = append(stream, sizePrefixed(b)...)
	}
	for name, r := range map[string]io.Reader{
		"whole":    bytes.NewReader(stream),
		"one byte": iotest.OneByteReader(bytes.NewReader(stream)),
		"half":     iotest.HalfReader(bytes.NewReader(stream)),
		"data+err": iotest.DataErrReader(bytes.NewReader(stream)),
	} {
		for i, want := range bodies {
			got, err := ReadFrame(r, max)
			if err != nil {
				t.Fatalf("%s: frame %d: %v", name, i, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: frame %d: %d bytes, want %d", name, i, len(got), len(want))
			}
		}
		// A clean end between frames is io.EOF, which callers treat as a close.
		if _, err := ReadFrame(r, max); err != io.EOF {
			t.Fatalf("%s: at end: %v, want io.EOF", name, err)
		}
	}
}

func TestReadFrameLimits(t *testing.T) {
	const max = 1000
	for name, size := range map[string]uint32{
		"over max":  max + 1,
		"max int32": 0x7fffffff,
		"negative":  0x80000000,
		"minus one": 0xffffffff,
	} {
		var err error
		n := allocated(func() {
			_, err = ReadFrame(bytes.NewReader(binary.BigEndian.AppendUint32(nil, size)), max)
		})
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Errorf("%s: %v, want ErrFrameTooLarge", name, err)
		}
		if n > 4096 {
			t.Errorf("%s: allocated %d bytes before rejecting", name, n)
		}
	}
	// A negative limit admits nothing but the empty frame.
	if _, err := ReadFrame(bytes.NewReader(sizePrefixed([]byte{1})), -1); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("negative limit: %v", err)
	}
}

func TestReadFrameShort(t *testing.T) {
	full := sizePrefixed([]byte("hello"))
	for cut := 1; cut < len(full); cut++ {
		_, err := ReadFrame(bytes.NewReader(full[:cut]), 100)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d: %v, want io.ErrUnexpectedEOF", cut, err)
		}
	}
	boom := errors.New("boom")
	if _, err := ReadFrame(iotest.ErrReader(boom), 100); !errors.Is(err, boom) {
		t.Errorf("reader error: %v", err)
	}
	r := io.MultiReader(bytes.NewReader(full[:6]), iotest.ErrReader(boom))
	if _, err := ReadFrame(r, 100); !errors.Is(err, boom) {
		t.Errorf("reader error mid frame: %v", err)
	}
}

// testRequests returns real requests at flexible and non-flexible versions.
func testRequests(t testing.TB) []kmsg.Request {
	batch := mustBuild(t, NewCodecs(), CodecLz4, 1_700_000_000_000, testRecords(3))
	str := func(s string) *string { return &s }

	apiV0 := kmsg.NewPtrApiVersionsRequest()
	apiV0.Version = 0
	apiV3 := kmsg.NewPtrApiVersionsRequest()
	apiV3.Version = 3
	apiV3.ClientSoftwareName, apiV3.ClientSoftwareVersion = "gregor-test", "1.0.0"

	metaV1 := kmsg.NewPtrMetadataRequest()
	metaV1.Version = 1
	metaV1.Topics = []kmsg.MetadataRequestTopic{{Topic: str("orders")}, {Topic: str("payments")}}
	metaV12 := kmsg.NewPtrMetadataRequest()
	metaV12.Version = 12
	metaV12.Topics = []kmsg.MetadataRequestTopic{{Topic: str("orders"), TopicID: [16]byte{1, 2, 3}}}
	metaV12.AllowAutoTopicCreation = true

	produce := func(v int16) *kmsg.ProduceRequest {
		r := kmsg.NewPtrProduceRequest()
		r.Version = v
		r.Acks, r.TimeoutMillis = -1, 30000
		p := kmsg.NewProduceRequestTopicPartition()
		p.Partition, p.Records = 3, batch
		topic := kmsg.NewProduceRequestTopic()
		topic.Topic, topic.Partitions = "orders", []kmsg.ProduceRequestTopicPartition{p}
		r.Topics = []kmsg.ProduceRequestTopic{topic}
		return r
	}
	fetch := func(v int16) *kmsg.FetchRequest {
		r := kmsg.NewPtrFetchRequest()
		r.Version = v
		r.MaxWaitMillis, r.MinBytes, r.MaxBytes = 500, 1, 50<<20
		p := kmsg.NewFetchRequestTopicPartition()
		p.Partition, p.FetchOffset, p.PartitionMaxBytes = 0, 42, 1<<20
		topic := kmsg.NewFetchRequestTopic()
		topic.Topic, topic.Partitions = "orders", []kmsg.FetchRequestTopicPartition{p}
		r.Topics = []kmsg.FetchRequestTopic{topic}
		return r
	}
	return []kmsg.Request{apiV0, apiV3, metaV1, metaV12, produce(3), produce(9), fetch(4), fetch(12)}
}

func TestParseRequest(t *testing.T) {
	clientID := "client-1"
	for i, req := range testRequests(t) {
		for _, cid := range []*string{&clientID, nil} {
			frame := AppendRequest(nil, int32(100+i), cid, req)
			if got := int(binary.BigEndian.Uint32(frame)); got != len(frame)-4 {
				t.Fatalf("size prefix %d, frame %d", got, len(frame)-4)
			}
			// Header v2 (flexible) adds exactly one byte: the empty tags.
			body := req.AppendTo(nil)
			headerLen := 2 + 2 + 4 + 2
			if cid != nil {
				headerLen += len(*cid)
			}
			if req.IsFlexible() {
				headerLen++
			}
			if len(frame)-4 != headerLen+len(body) {
				t.Fatalf("%s v%d: frame %d bytes, want header %d + body %d", kmsg.NameForKey(req.Key()), req.GetVersion(), len(frame)-4, headerLen, len(body))
			}

			got, err := ReadFrame(bytes.NewReader(frame), DefaultMaxRequestSize)
			if err != nil {
				t.Fatal(err)
			}
			h, parsed, err := ParseRequest(got)
			if err != nil {
				t.Fatalf("%s v%d: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
			}
			if h.Key != req.Key() || h.Version != req.GetVersion() || h.CorrelationID != int32(100+i) {
				t.Fatalf("header %+v", h)
			}
			if (h.ClientID == nil) != (cid == nil) || (cid != nil && *h.ClientID != *cid) {
				t.Fatalf("client id %v, want %v", h.ClientID, cid)
			}
			if parsed.Key() != req.Key() || parsed.GetVersion() != req.GetVersion() {
				t.Fatalf("parsed %T v%d", parsed, parsed.GetVersion())
			}
			if !bytes.Equal(parsed.AppendTo(nil), body) {
				t.Fatalf("%s v%d: body does not re-encode the same", kmsg.NameForKey(req.Key()), req.GetVersion())
			}
		}
	}
}

// rawHeader builds a request header by hand.
func rawHeader(key, version int16, corr int32, clientID string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, uint16(len(clientID)))
	return append(b, clientID...)
}

func TestParseRequestHeaderTags(t *testing.T) {
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	req.Topics = []kmsg.MetadataRequestTopic{{TopicID: [16]byte{9}}}
	body := req.AppendTo(nil)

	// Header v2 with two tagged fields (tag 0: 3 bytes, tag 5: empty):
	// they are skipped, not mistaken for the body.
	frame := rawHeader(3, 12, 7, "c")
	frame = append(frame, 2, 0, 3, 'a', 'b', 'c', 5, 0)
	frame = append(frame, body...)
	h, parsed, err := ParseRequest(frame)
	if err != nil {
		t.Fatal(err)
	}
	if h.CorrelationID != 7 || !bytes.Equal(parsed.AppendTo(nil), body) {
		t.Fatalf("header %+v, body differs", h)
	}

	// Tags that run past the frame are a malformed header.
	for name, tags := range map[string][]byte{
		"torn tag":       {1, 0, 10, 'x'},
		"huge count":     {0xff, 0xff, 0xff, 0xff, 0x0f}, // 2^32-1 tags: must fail at once
		"count over len": {100, 0, 0},
		"no tags":        {},
	} {
		frame := append(rawHeader(3, 12, 7, "c"), tags...)
		h, _, err := ParseRequest(frame)
		if !errors.Is(err, ErrMalformedHeader) {
			t.Errorf("%s: %v, want ErrMalformedHeader", name, err)
		}
		if h.CorrelationID != 7 {
			t.Errorf("%s: header not returned: %+v", name, h)
		}
	}

	// Header v1 (non-flexible) has no tag section: a body starting with
	// what would be a tag count is read as the body.
	v1 := kmsg.NewPtrMetadataRequest()
	v1.Version = 1
	v1.Topics = []kmsg.MetadataRequestTopic{}
	frame = append(rawHeader(3, 1, 8, ""), v1.AppendTo(nil)...)
	if _, parsed, err := ParseRequest(frame); err != nil || len(parsed.(*kmsg.MetadataRequest).Topics) != 0 {
		t.Fatalf("v1: %v", err)
	}
}

func TestParseRequestErrors(t *testing.T) {
	cases := map[string]struct {
		frame []byte
		want  error
		corr  int32 // expected correlation id, -1 when the header cannot be read
	}{
		"empty":            {nil, ErrMalformedHeader, -1},
		"short":            {[]byte{0, 18, 0}, ErrMalformedHeader, -1},
		"no client id":     {rawHeader(18, 0, 5, "")[:8], ErrMalformedHeader, -1},
		"client id past":   {append(rawHeader(18, 0, 5, "")[:8], 0, 9, 'a'), ErrMalformedHeader, -1},
		"unknown key":      {rawHeader(32000, 0, 5, "x"), ErrUnknownKey, 5},
		"negative key":     {rawHeader(-1, 0, 6, "x"), ErrUnknownKey, 6},
		"unknown version":  {rawHeader(18, 99, 7, "x"), ErrUnknownVersion, 7},
		"negative version": {rawHeader(3, -1, 8, "x"), ErrUnknownVersion, 8},
		"truncated body":   {append(rawHeader(3, 1, 9, "x"), 0, 0, 0, 5, 0), ErrMalformedBody, 9},
		"bad array len":    {append(rawHeader(3, 1, 10, "x"), 0x7f, 0xff, 0xff, 0xff), ErrMalformedBody, 10},
	}
	for name, tc := range cases {
		h, req, err := ParseRequest(tc.frame)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
		if req != nil {
			t.Errorf("%s: returned a request with an error", name)
		}
		if tc.corr >= 0 && h.CorrelationID != tc.corr {
			t.Errorf("%s: correlation id %d, want %d (the header must come back)", name, h.CorrelationID, tc.corr)
		}
	}
	// The header of an unknown version carries what ApiVersions needs to answer.
	h, _, _ := ParseRequest(rawHeader(18, 99, 7, "cli"))
	if h.Key != 18 || h.Version != 99 || h.ClientID == nil || *h.ClientID != "cli" {
		t.Errorf("unknown version header %+v", h)
	}
	// A null client id is allowed.
	frame := binary.BigEndian.AppendUint16(rawHeader(18, 0, 1, "")[:8], 0xffff)
	if h, _, err := ParseRequest(frame); err != nil || h.ClientID != nil {
		t.Errorf("null client id: %+v, %v", h, err)
	}
}

func TestAppendResponse(t *testing.T) {
	metaV12 := kmsg.NewPtrMetadataResponse()
	metaV12.Version = 12
	metaV12.Brokers = []kmsg.MetadataResponseBroker{{NodeID: 1, Host: "localhost", Port: 9092}}
	metaV1 := kmsg.NewPtrMetadataResponse()
	metaV1.Version = 1
	metaV1.Brokers = metaV12.Brokers
	apiV3 := kmsg.NewPtrApiVersionsResponse()
	apiV3.Version = 3
	apiV3.ApiKeys = []kmsg.ApiVersionsResponseApiKey{{ApiKey: 18, MinVersion: 0, MaxVersion: 4}}
	apiV0 := kmsg.NewPtrApiVersionsResponse()
	apiV0.Version = 0
	apiV0.ApiKeys = apiV3.ApiKeys

	for _, tc := range []struct {
		resp    kmsg.Response
		tagByte bool
	}{
		{metaV12, true}, // flexible: response header v1
		{metaV1, false}, // not flexible: header v0
		{apiV3, false},  // ApiVersions: always header v0, even flexible
		{apiV0, false},  // and when not flexible
		{produceV9(), true},
	} {
		prefix := []byte("earlier response")
		out := AppendResponse(prefix, 77, tc.resp)
		if !bytes.HasPrefix(out, []byte("earlier response")) {
			t.Fatal("prefix lost")
		}
		frame := out[len(prefix):]
		if int(binary.BigEndian.Uint32(frame)) != len(frame)-4 {
			t.Fatalf("size %d, frame %d", binary.BigEndian.Uint32(frame), len(frame)-4)
		}
		if corr := int32(binary.BigEndian.Uint32(frame[4:])); corr != 77 {
			t.Fatalf("correlation id %d", corr)
		}
		body := frame[8:]
		want := tc.resp.AppendTo(nil)
		if tc.tagByte {
			if body[0] != 0 {
				t.Fatalf("%s v%d: tag byte %d", kmsg.NameForKey(tc.resp.Key()), tc.resp.GetVersion(), body[0])
			}
			body = body[1:]
		}
		if !bytes.Equal(body, want) {
			t.Fatalf("%s v%d: body differs (tag byte expected: %v)", kmsg.NameForKey(tc.resp.Key()), tc.resp.GetVersion(), tc.tagByte)
		}
		// And a client decodes it.
		dec := tc.resp.RequestKind().ResponseKind()
		dec.SetVersion(tc.resp.GetVersion())
		if err := dec.ReadFrom(body); err != nil {
			t.Fatalf("%s v%d: %v", kmsg.NameForKey(tc.resp.Key()), tc.resp.GetVersion(), err)
		}
	}
}

func produceV9() *kmsg.ProduceResponse {
	r := kmsg.NewPtrProduceResponse()
	r.Version = 9
	r.Topics = []kmsg.ProduceResponseTopic{{Topic: "orders", Partitions: []kmsg.ProduceResponseTopicPartition{{Partition: 0, BaseOffset: 10}}}}
	return r
}

// TestTagCountBomb sends a 20-byte request whose body claims 2^32-1 tagged
// fields. kmsg v1.15.0 looped that many times (about 45 s of CPU); from
// v1.15.1 on the parse fails at once. The 10 s bound is a hang detector, not
// a performance target: the parse takes microseconds.
func TestTagCountBomb(t *testing.T) {
	frame := []byte{
		0, 18, 0, 3, // ApiVersions v3 (flexible; request header v2)
		0, 0, 0, 1, // correlation id
		0, 0, // client id ""
		0,    // header tags: none
		1, 1, // client software name and version: ""
		0xff, 0xff, 0xff, 0xff, 0x0f, // body tags: 4294967295 of them, and no bytes left
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := ParseRequest(frame)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrMalformedBody) {
			t.Fatalf("ParseRequest: %v, want ErrMalformedBody", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ParseRequest still running after 10s: kmsg's tag loop is unbounded (kmsg older than v1.15.1?)")
	}
}

// TestArrayCountBomb sends a Fetch v12 whose topic array claims 2^32-2
// entries with no bytes behind them. kmsg v1.15.1 bounds an array's
// pre-allocation by the bytes left, so the parse fails without allocating
// for the claimed count: the test measures the bytes allocated.
func TestArrayCountBomb(t *testing.T) {
	frame := []byte{
		0, 1, 0, 12, // Fetch v12 (flexible; request header v2)
		0, 0, 0, 1, // correlation id
		0, 0, // client id ""
		0,                      // header tags: none
		0xFF, 0xFF, 0xFF, 0xFF, // replica id -1
		0, 0, 0x01, 0xF4, // max wait 500
		0, 0, 0, 1, // min bytes 1
		0, 0x10, 0, 0, // max bytes 1 MiB
		0,          // isolation level
		0, 0, 0, 0, // session id
		0xFF, 0xFF, 0xFF, 0xFF, // session epoch -1
		0xFF, 0xFF, 0xFF, 0xFF, 0x0F, // topics: compact array of 2^32-2
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := ParseRequest(frame)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrMalformedBody) {
		t.Fatalf("ParseRequest: %v, want ErrMalformedBody", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Fatalf("parsing a %d-byte frame allocated %d bytes", len(frame), got)
	}
}

// TestResponseSizeHintCoversFetch: a fetch response encodes within its hint,
// so the frame buffer is never grown.
func TestResponseSizeHintCoversFetch(t *testing.T) {
	resp := kmsg.NewPtrFetchResponse()
	for _, v := range []int16{4, 12, 18} {
		resp.SetVersion(v)
		resp.Topics = nil
		for ti := range 3 {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic = strings.Repeat("t", 200+ti)
			for p := range 5 {
				rp := kmsg.NewFetchResponseTopicPartition()
				rp.Partition = int32(p)
				rp.RecordBatches = make([]byte, 1000*p)
				rp.AbortedTransactions = make([]kmsg.FetchResponseTopicPartitionAbortedTransaction, p)
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		hint := ResponseSizeHint(resp)
		buf := AppendResponse(make([]byte, 0, hint), 7, resp)
		if len(buf) > hint {
			t.Errorf("v%d: encoded %d bytes, hint %d", v, len(buf), hint)
		}
	}
	if ResponseSizeHint(kmsg.NewPtrMetadataResponse()) != 0 {
		t.Error("a metadata response got a size hint")
	}
}
