package metadata

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestTopicIDText(t *testing.T) {
	for range 2000 {
		id, err := newID()
		if err != nil {
			t.Fatal(err)
		}
		s := id.String()
		if id == (TopicID{}) || len(s) != 22 || strings.HasPrefix(s, "-") {
			t.Fatalf("newID made %v (%q)", id, s)
		}
		back, err := ParseTopicID(s)
		if err != nil || back != id {
			t.Fatalf("ParseTopicID(%q) = %v, %v; want %v", s, back, err, id)
		}
	}
	for _, bad := range []string{"", "AAAA", "AAAAAAAAAAAAAAAAAAAAAA==", "AAAAAAAAAAAAAAAAAAAAA*", "AAAAAAAAAAAAAAAAAAAAAAAA"} {
		if _, err := ParseTopicID(bad); err == nil {
			t.Errorf("ParseTopicID(%q) accepted", bad)
		}
	}
}

func TestValueRoundTrip(t *testing.T) {
	topic := Topic{Name: "t", ID: TopicID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, Partitions: 12,
		Configs: map[string]string{"retention.ms": "1000", "cleanup.policy": "compact"}}
	b, err := encodeTopic(topic)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"id":"AQIDBAUGBwgJCgsMDQ4PEA","partitions":12,"configs":{"cleanup.policy":"compact","retention.ms":"1000"}}`
	if string(b) != want {
		t.Fatalf("topic value %s\nwant %s (the format drawn in doc.go)", b, want)
	}
	if got, err := decodeTopic("t", b); err != nil || !reflect.DeepEqual(got, topic) {
		t.Fatalf("decodeTopic = %+v, %v", got, err)
	}

	broker := Broker{NodeID: 3, Host: "h3", Port: 9092, Rack: "r"}
	if b, err = encodeBroker(broker); err != nil {
		t.Fatal(err)
	}
	if want := `{"v":1,"node_id":3,"host":"h3","port":9092,"rack":"r"}`; string(b) != want {
		t.Fatalf("broker value %s, want %s", b, want)
	}
	if got, err := decodeBroker(3, b); err != nil || !reflect.DeepEqual(got, broker) {
		t.Fatalf("decodeBroker = %+v, %v", got, err)
	}

	if b, err = encodeBrokerConfigs(nil); err != nil {
		t.Fatal(err)
	}
	if want := `{"v":1,"configs":{}}`; string(b) != want {
		t.Fatalf("broker configs value %s, want %s", b, want)
	}
	if got, err := decodeBrokerConfigs(b); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("decodeBrokerConfigs = %#v, %v", got, err)
	}

	if b, err = encodeCluster("AQIDBAUGBwgJCgsMDQ4PEA"); err != nil {
		t.Fatal(err)
	}
	if got, err := decodeCluster(b); err != nil || got != "AQIDBAUGBwgJCgsMDQ4PEA" {
		t.Fatalf("decodeCluster = %q, %v", got, err)
	}
}

func TestValueRejects(t *testing.T) {
	topics := []string{
		``,
		`null`,
		`{}`,
		`{"v":0,"id":"AQIDBAUGBwgJCgsMDQ4PEA","partitions":1}`,
		`{"v":2,"id":"AQIDBAUGBwgJCgsMDQ4PEA","partitions":1}`,
		`{"v":1,"id":"AQIDBAUGBwgJCgsMDQ4PEA","partitions":0}`,
		`{"v":1,"id":"AAAAAAAAAAAAAAAAAAAAAA","partitions":1}`,
		`{"v":1,"id":"short","partitions":1}`,
		`{"v":1,"id":"AQIDBAUGBwgJCgsMDQ4PEA","partitions":1,"configs":{"a":1}}`,
		`{"v":1,"id":"AQIDBAUGBwgJCgsMDQ4PEA","partitions":1} trailing`,
		`{"v":1,"id":"AQIDBAUGBwgJCgsMDQ4PEA","partitions":99999999999}`,
	}
	for _, v := range topics {
		if got, err := decodeTopic("t", []byte(v)); err == nil {
			t.Errorf("decodeTopic(%s) = %+v, want an error", v, got)
		}
	}
	brokers := []string{
		`{"v":1,"node_id":4,"host":"h","port":1}`,
		`{"v":1,"node_id":3,"host":"h","port":70000}`,
		`{"v":2,"node_id":3,"host":"h","port":1}`,
	}
	for _, v := range brokers {
		if got, err := decodeBroker(3, []byte(v)); err == nil {
			t.Errorf("decodeBroker(3, %s) = %+v, want an error", v, got)
		}
	}
	for _, s := range []string{"", "x", "01", "+1", " 1", "99999999999"} {
		if n, err := parseNodeID(s); err == nil {
			t.Errorf("parseNodeID(%q) = %d, want an error", s, n)
		}
	}
	if n, err := parseNodeID("-1"); err != nil || n != -1 {
		t.Errorf("parseNodeID(-1) = %d, %v", n, err)
	}
	if err := checkTopicName("a/b"); !errors.Is(err, ErrInvalidTopicName) {
		t.Errorf("checkTopicName(a/b) = %v", err)
	}
}

// FuzzDecodeValue feeds bytes as read from etcd to every value decoder:
// none may panic, and whatever decodes must encode back to a value that
// decodes the same.
func FuzzDecodeValue(f *testing.F) {
	for _, seed := range []string{
		``,
		`{}`,
		`{"v":1,"id":"AQIDBAUGBwgJCgsMDQ4PEA","partitions":3,"configs":{"a":"b"}}`,
		`{"v":1,"id":"AQIDBAUGBwgJCgsMDQ4PEA","partitions":3,"configs":{"a":"b"}}garbage`,
		`{"v":1,"node_id":3,"host":"h","port":9092,"rack":""}`,
		`{"v":1,"configs":{"x":"y"}}`,
		`{"v":1,"id":"AQIDBAUGBwgJCgsMDQ4PEA"}`,
		`{"v":1,"topic_id":"AQIDBAUGBwgJCgsMDQ4PEA","replicas":[2,1,3],"leader":2,"leader_epoch":4,"isr":[2,3]}`,
		`{"v":1,"topic_id":"AQIDBAUGBwgJCgsMDQ4PEA","replicas":[1],"leader":-1,"leader_epoch":0,"isr":[]}`,
		`{"v":1,"topic_id":"AQIDBAUGBwgJCgsMDQ4PEA","replicas":[2,3,1],"leader":1,"leader_epoch":0,"isr":[1],"adding_replicas":[2,3],"removing_replicas":[1]}`,
		`{"v":1,"topic_id":"AQIDBAUGBwgJCgsMDQ4PEA","replicas":[1],"leader":1,"leader_epoch":0,"isr":[1],"adding_replicas":[],"removing_replicas":[]}`,
		"\xff\xff\xff\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if st, err := decodePartition("t", 1, 7, b); err == nil {
			enc, err := encodePartition(st)
			if err != nil {
				t.Fatalf("decoded partition state %+v does not encode: %v", st, err)
			}
			again, err := decodePartition("t", 1, 7, enc)
			// An empty ISR is written as [], so nil and empty are one.
			norm := func(p PartitionState) PartitionState {
				if len(p.ISR) == 0 {
					p.ISR = nil
				}
				return p
			}
			if err != nil || !reflect.DeepEqual(norm(again), norm(st)) {
				t.Fatalf("partition state %+v re-decoded as %+v, %v", st, again, err)
			}
		}
		if tp, err := decodeTopic("t", b); err == nil {
			enc, err := encodeTopic(tp)
			if err != nil {
				t.Fatal(err)
			}
			again, err := decodeTopic("t", enc)
			if err != nil || !reflect.DeepEqual(again, tp) {
				t.Fatalf("topic %+v re-decoded as %+v, %v", tp, again, err)
			}
		}
		if br, err := decodeBroker(3, b); err == nil {
			enc, err := encodeBroker(br)
			if err != nil {
				t.Fatal(err)
			}
			if again, err := decodeBroker(3, enc); err != nil || !reflect.DeepEqual(again, br) {
				t.Fatalf("broker %+v re-decoded as %+v, %v", br, again, err)
			}
		}
		if cfgs, err := decodeBrokerConfigs(b); err == nil && cfgs == nil {
			t.Fatal("decodeBrokerConfigs returned a nil map")
		}
		_, _ = decodeCluster(b)
	})
}

func TestZapBridge(t *testing.T) {
	var buf bytes.Buffer
	demote := func(e zapcore.Entry, _ map[string]any) bool { return e.Message == "expected" }
	lg := newZapLogger(zerolog.New(&buf).Level(zerolog.InfoLevel), zapcore.WarnLevel, demote).
		With(zap.String("member", "m1"))
	lg.Info("chatter")
	lg.Warn("expected")
	lg.Warn("disk slow", zap.Int("ms", 120))
	lg.Error("failed", zap.Error(errors.New("boom")))
	got := buf.String()
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 2 {
		t.Fatalf("want the warning and the error only, got:\n%s", got)
	}
	for _, want := range []string{`"level":"warn"`, `"member":"m1"`, `"ms":120`, `"message":"disk slow"`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("warn line %s lacks %s", lines[0], want)
		}
	}
	for _, want := range []string{`"level":"error"`, `"error":"boom"`, `"message":"failed"`} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("error line %s lacks %s", lines[1], want)
		}
	}
}
