package integration

// Hostile and unusual bytes on raw TCP connections: malformed frames must
// cost the broker at most that one connection (closed promptly, or
// answered), never the process; an unknown ApiVersions version gets the v0
// UNSUPPORTED_VERSION answer Kafka gives; pipelined requests are answered
// in order.

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fzHeader encodes a request header v1 (and v2's empty tag section when
// flexible) for key/version, without the size prefix.
func fzHeader(key, version int16, corr int32, flexible bool) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	id := "gregor-it-frames"
	b = kbin.AppendNullableString(b, &id)
	if flexible {
		b = append(b, 0)
	}
	return b
}

// fzFrame prefixes payload with its size.
func fzFrame(payload ...[]byte) []byte {
	body := bytes.Join(payload, nil)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func TestFramesMalformed(t *testing.T) {
	const maxReq = 1 << 20
	p := startBroker(t, "--socket-request-max-bytes", "1048576")
	ctx := testContext(t, 90*time.Second)
	rng := rand.New(rand.NewSource(1))
	garbage := make([]byte, 64)
	rng.Read(garbage)

	cases := []struct {
		name        string
		bytes       []byte
		allowAnswer bool // a response frame is acceptable instead of a close
	}{
		{"SizeFFFFFFFF", []byte{0xFF, 0xFF, 0xFF, 0xFF}, false},
		{"SizeNegative", []byte{0x80, 0, 0, 0}, false},
		{"SizeOverLimit", append(binary.BigEndian.AppendUint32(nil, maxReq+1), make([]byte, 4096)...), false},
		{"SizeZero", []byte{0, 0, 0, 0}, false},
		{"HTTP", []byte("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"), false},
		{"TLSClientHello", []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}, false},
		{"RandomGarbage", fzFrame(garbage), true},
		{"TruncatedHeader", fzFrame([]byte{0, 3, 0}), false},
		{"TruncatedHeaderNoClientID", fzFrame([]byte{0, 3, 0, 1, 0, 0, 0, 7}), false},
		{"TruncatedClientID", fzFrame([]byte{0, 3, 0, 1, 0, 0, 0, 7, 0, 100, 'a', 'b'}), false},
		{"UnknownApiKey999", fzFrame(fzHeader(999, 0, 9, false)), true},
		{"NegativeApiKey", fzFrame(fzHeader(-1, 0, 9, false)), true},
		{"UnsupportedKeyJoinGroup", fzFrame(fzHeader(11, 5, 9, false), make([]byte, 40)), true},
		{"ProduceBelowMinVersion", fzFrame(fzHeader(0, 2, 9, false), make([]byte, 10)), true},
		{"MetadataUnknownVersion", fzFrame(fzHeader(3, 99, 9, true)), true},
		{"ValidHeaderGarbageBody", fzFrame(fzHeader(0, 9, 9, true), bytes.Repeat([]byte{0xFF}, 20)), true},
		{"MetadataV1TruncatedBody", fzFrame(fzHeader(3, 1, 9, false), []byte{0, 0, 0, 5, 0, 3, 'a'}), true},
		{"HugeArrayMetadataV1", fzFrame(fzHeader(3, 1, 9, false), []byte{0x7F, 0xFF, 0xFF, 0xFF}), true},
		{"HugeArrayMetadataV12", fzFrame(fzHeader(3, 12, 9, true), []byte{0xFF, 0xFF, 0xFF, 0xFF, 0x0F}), true},
		{"HugeArrayProduceV3", fzFrame(fzHeader(0, 3, 9, false), []byte{
			0xFF, 0xFF, // transactional id: null
			0xFF, 0xFF, // acks -1
			0, 0, 0x27, 0x10, // timeout 10000
			0x7F, 0xFF, 0xFF, 0xFF, // topics: 2^31-1 of them, none present
		}), true},
		{"HugeArrayFetchV12", fzFrame(fzHeader(1, 12, 9, true), []byte{
			0xFF, 0xFF, 0xFF, 0xFF, // replica id -1
			0, 0, 0x01, 0xF4, // max wait 500
			0, 0, 0, 1, // min bytes 1
			0, 0x10, 0, 0, // max bytes 1 MiB
			0,          // isolation level
			0, 0, 0, 0, // session id
			0xFF, 0xFF, 0xFF, 0xFF, // session epoch -1
			0xFF, 0xFF, 0xFF, 0xFF, 0x0F, // topics: compact array of 2^32-2
		}), true},
		{"HugeHeaderTagCount", fzFrame(fzHeader(3, 12, 9, false), []byte{0xFF, 0xFF, 0xFF, 0xFF, 0x0F}), true},
		// 2^32-1 tagged fields in the body: must not keep a core busy
		// (kmsg v1.15.0 looped over it; v1.15.1 stops at the end of input).
		{"HugeBodyTagCount", fzFrame(fzHeader(18, 3, 9, true), []byte{1, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F}), true},
		{"HugeStringLength", fzFrame(fzHeader(3, 4, 9, false), []byte{0, 0, 0, 1, 0x7F, 0xFF}), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := fzDial(t, p.Addr)
			raw.write(c.bytes)
			raw.expectClosed(10*time.Second, c.allowAnswer)
		})
	}

	t.Run("HangUpMidFrame", func(t *testing.T) {
		raw := fzDial(t, p.Addr)
		raw.write(append(binary.BigEndian.AppendUint32(nil, 100), make([]byte, 50)...))
		raw.c.Close()
	})

	t.Run("SlowFrame", func(t *testing.T) {
		// A valid request sent a few bytes at a time is still served.
		raw := fzDial(t, p.Addr)
		req := kmsg.NewPtrApiVersionsRequest()
		req.SetVersion(3)
		req.ClientSoftwareName, req.ClientSoftwareVersion = "gregor-it", "1.0.0"
		frame := fzRequestFrame(77, req)
		for i := 0; i < len(frame); i += 7 {
			raw.write(frame[i:min(i+7, len(frame))])
		}
		b, err := raw.readFrame(10 * time.Second)
		if err != nil {
			t.Fatalf("reading the answer to a dribbled request: %v", err)
		}
		corr, resp, err := fzParseResponse(b, 18, 3)
		if err != nil || corr != 77 || resp.(*kmsg.ApiVersionsResponse).ErrorCode != 0 {
			t.Fatalf("dribbled ApiVersions: corr %d, err %v, resp %+v", corr, err, resp)
		}
	})

	// The broker survived all of it: a normal client works.
	adm := fzAdmin(t, p.Addr)
	topic := fzTopic(t, "fz")
	fzCreateTopic(ctx, t, adm, topic, 1, nil)
	cl := fzClient(t, p.Addr)
	fzProduceSync(ctx, t, cl, &kgo.Record{Topic: topic, Value: []byte("still alive")})
	if got := fzConsume(ctx, t, p.Addr, topic, 1); string(got[0].Value) != "still alive" {
		t.Fatalf("consumed %q", got[0].Value)
	}
	fzCheckLogs(t, p)
}

func TestFramesApiVersionsUnknownVersion(t *testing.T) {
	p := startBroker(t)
	raw := fzDial(t, p.Addr)

	// What a client newer than the broker sends: ApiVersions v127 with a
	// v2 header and a v3-style body.
	body := kbin.AppendCompactString(nil, "future-client")
	body = kbin.AppendCompactString(body, "9.9.9")
	body = append(body, 0)
	raw.write(fzFrame(fzHeader(18, 127, 42, true), body))
	b, err := raw.readFrame(10 * time.Second)
	if err != nil {
		t.Fatalf("ApiVersions v127: no answer: %v", err)
	}
	corr, resp, err := fzParseResponse(b, 18, 0)
	if err != nil {
		t.Fatalf("ApiVersions v127 answer does not parse as v0: %v (%x)", err, b)
	}
	av := resp.(*kmsg.ApiVersionsResponse)
	if corr != 42 {
		t.Fatalf("correlation id %d, want 42", corr)
	}
	if av.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("error %s, want UNSUPPORTED_VERSION(35)", fzErrCode(av.ErrorCode))
	}
	if len(av.ApiKeys) == 0 {
		t.Fatal("UNSUPPORTED_VERSION answer lists no api keys")
	}
	found := false
	for _, k := range av.ApiKeys {
		if k.ApiKey == 18 && k.MinVersion == 0 && k.MaxVersion >= 3 {
			found = true
		}
	}
	if !found {
		t.Fatalf("api key list %+v lacks ApiVersions v0-v3+", av.ApiKeys)
	}

	// The connection stays usable: the client retries with a version it now knows.
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	req.ClientSoftwareName, req.ClientSoftwareVersion = "future-client", "9.9.9"
	resp2 := raw.roundTrip(req).(*kmsg.ApiVersionsResponse)
	if resp2.ErrorCode != 0 || len(resp2.ApiKeys) != len(av.ApiKeys) {
		t.Fatalf("ApiVersions v3 after the downgrade: %s with %d keys (v0 answer had %d)", fzErrCode(resp2.ErrorCode), len(resp2.ApiKeys), len(av.ApiKeys))
	}

	// Invalid client software name (KIP-511): INVALID_REQUEST, keys still listed.
	req = kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	req.ClientSoftwareName, req.ClientSoftwareVersion = "bad name!", "1"
	resp3 := raw.roundTrip(req).(*kmsg.ApiVersionsResponse)
	if resp3.ErrorCode != kerr.InvalidRequest.Code || len(resp3.ApiKeys) == 0 {
		t.Fatalf("ApiVersions v3 with a bad software name: %s with %d keys, want INVALID_REQUEST with the list", fzErrCode(resp3.ErrorCode), len(resp3.ApiKeys))
	}
	fzCheckLogs(t, p)
}

func TestFramesPipelining(t *testing.T) {
	p := startBroker(t)
	ctx := testContext(t, 60*time.Second)

	t.Run("MetadataAndApiVersions", func(t *testing.T) {
		raw := fzDial(t, p.Addr)
		const n = 50
		var out []byte
		for i := 0; i < n; i++ {
			var req kmsg.Request
			if i%2 == 0 {
				m := kmsg.NewPtrMetadataRequest()
				m.SetVersion(int16((i / 2) % 14))
				req = m
			} else {
				a := kmsg.NewPtrApiVersionsRequest()
				a.SetVersion(int16((i / 2) % 6))
				a.ClientSoftwareName, a.ClientSoftwareVersion = "gregor-it", "1.0.0"
				req = a
			}
			out = append(out, fzRequestFrame(int32(1000+i), req)...)
		}
		raw.write(out) // all 50 before reading anything
		for i := 0; i < n; i++ {
			b, err := raw.readFrame(10 * time.Second)
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			key, version := int16(3), int16((i/2)%14)
			if i%2 == 1 {
				key, version = 18, int16((i/2)%6)
			}
			corr, resp, err := fzParseResponse(b, key, version)
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			if corr != int32(1000+i) {
				t.Fatalf("response %d has correlation id %d, want %d (out of order)", i, corr, 1000+i)
			}
			switch r := resp.(type) {
			case *kmsg.MetadataResponse:
				if len(r.Brokers) != 1 || r.Brokers[0].NodeID != 1 {
					t.Fatalf("metadata v%d response %d: brokers %+v", version, i, r.Brokers)
				}
			case *kmsg.ApiVersionsResponse:
				if r.ErrorCode != 0 || len(r.ApiKeys) == 0 {
					t.Fatalf("ApiVersions v%d response %d: %s, %d keys", version, i, fzErrCode(r.ErrorCode), len(r.ApiKeys))
				}
			}
		}
	})

	t.Run("AcksZeroInterleaved", func(t *testing.T) {
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, fzAdmin(t, p.Addr), topic, 1, nil)
		raw := fzDial(t, p.Addr)
		var out []byte
		var wantCorr []int32
		produced := 0
		for i := 0; i < 30; i++ {
			corr := int32(2000 + i)
			if i%3 == 1 {
				req := fzProduceRequest(9, fzProducePart{topic: topic, records: fzBatch(time.Now().UnixMilli(), fzRecord{value: []byte{byte(produced)}})})
				req.Acks = 0
				out = append(out, fzRequestFrame(corr, req)...)
				produced++
				continue
			}
			m := kmsg.NewPtrMetadataRequest()
			m.SetVersion(12)
			out = append(out, fzRequestFrame(corr, m)...)
			wantCorr = append(wantCorr, corr)
		}
		raw.write(out)
		for i, want := range wantCorr {
			b, err := raw.readFrame(10 * time.Second)
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			corr, _, err := fzParseResponse(b, 3, 12)
			if err != nil || corr != want {
				t.Fatalf("response %d: correlation id %d (err %v), want %d: acks=0 produces must not be answered", i, corr, err, want)
			}
		}
		// Requests on a connection are handled in order, so every acks=0
		// produce before the last Metadata is in the log.
		fp := fzRawFetch(t, raw, fzFetchRequest(12, topic, [16]byte{}, 0, 0, 0))
		if fp.ErrorCode != 0 || fp.HighWatermark != int64(produced) {
			t.Fatalf("after %d acks=0 produces: %s, hw %d", produced, fzErrCode(fp.ErrorCode), fp.HighWatermark)
		}
	})

	t.Run("LargeResponsesBackpressure", func(t *testing.T) {
		// Many large responses queued while the client reads nothing:
		// the broker must neither deadlock nor drop or reorder any.
		topic := fzTopic(t, "fz")
		fzCreateTopic(ctx, t, fzAdmin(t, p.Addr), topic, 1, nil)
		big := make([]byte, 200_000)
		rand.New(rand.NewSource(3)).Read(big)
		fzProduceSync(ctx, t, fzClient(t, p.Addr), &kgo.Record{Topic: topic, Value: big})
		raw := fzDial(t, p.Addr)
		const n = 100
		var out []byte
		for i := 0; i < n; i++ {
			out = append(out, fzRequestFrame(int32(3000+i), fzFetchRequest(12, topic, [16]byte{}, 0, 0, 0))...)
		}
		done := make(chan struct{})
		go func() { // write while the responses pile up unread
			defer close(done)
			raw.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			raw.c.Write(out)
		}()
		for i := 0; i < n; i++ {
			b, err := raw.readFrame(20 * time.Second)
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			corr, resp, err := fzParseResponse(b, 1, 12)
			if err != nil || corr != int32(3000+i) {
				t.Fatalf("response %d: correlation id %d, err %v", i, corr, err)
			}
			fr := resp.(*kmsg.FetchResponse)
			if len(fr.Topics) != 1 || len(fr.Topics[0].Partitions) != 1 || len(fr.Topics[0].Partitions[0].RecordBatches) < len(big) {
				t.Fatalf("response %d lacks the %d-byte record", i, len(big))
			}
		}
		<-done
	})
	fzCheckLogs(t, p)
}
