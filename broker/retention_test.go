package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestRetentionSettingsResolution(t *testing.T) {
	tbl := newConfigTable()
	cases := []struct {
		name   string
		topic  map[string]string
		layers brokerLayers
		wantMs int64
	}{
		{"default", nil, brokerLayers{}, 604800000},
		{"hours", nil, brokerLayers{static: map[string]string{"log.retention.hours": "2"}}, 2 * 3600000},
		{"minutes beat hours", nil, brokerLayers{static: map[string]string{"log.retention.hours": "2", "log.retention.minutes": "3"}}, 3 * 60000},
		{"ms beats minutes", nil, brokerLayers{static: map[string]string{"log.retention.ms": "5", "log.retention.minutes": "3"}}, 5},
		{"dynamic default ms beats static hours", nil, brokerLayers{dynamicDefault: map[string]string{"log.retention.ms": "7"}, static: map[string]string{"log.retention.hours": "2"}}, 7},
		{"topic beats all", map[string]string{"retention.ms": "11"}, brokerLayers{dynamic: map[string]string{"log.retention.ms": "7"}}, 11},
		{"hours -1 is no limit", nil, brokerLayers{static: map[string]string{"log.retention.hours": "-1"}}, -1},
		{"dynamic hours beat static hours", nil, brokerLayers{dynamic: map[string]string{"log.retention.hours": "5"}, static: map[string]string{"log.retention.hours": "2"}}, 5 * 3600000},
		{"cluster-wide minutes beat static hours", nil, brokerLayers{dynamicDefault: map[string]string{"log.retention.minutes": "9"}, static: map[string]string{"log.retention.hours": "2"}}, 9 * 60000},
	}
	for _, c := range cases {
		s := tbl.settings(c.topic, c.layers)
		if s.storage.RetentionMs != c.wantMs {
			t.Errorf("%s: retention.ms %d, want %d", c.name, s.storage.RetentionMs, c.wantMs)
		}
	}
	// DescribeConfigs reports what is enforced, with the synonym it came from.
	cv := tbl.resolveTopic(tbl.topicIdx["retention.ms"], nil, brokerLayers{static: map[string]string{"log.retention.hours": "2"}})
	if cv.value == nil || *cv.value != "7200000" || cv.source != kmsg.ConfigSourceStaticBrokerConfig {
		t.Errorf("retention.ms with log.retention.hours=2: %v from source %v", cv.value, cv.source)
	}
	found := false
	for _, syn := range cv.synonyms {
		found = found || syn.Name == "log.retention.hours" && syn.Source == kmsg.ConfigSourceStaticBrokerConfig
	}
	if !found {
		t.Errorf("synonyms %+v lack log.retention.hours", cv.synonyms)
	}
	s := tbl.settings(map[string]string{"retention.bytes": "4096", "segment.jitter.ms": "9", "cleanup.policy": "compact"}, brokerLayers{})
	if s.storage.RetentionBytes != 4096 || s.storage.SegmentJitterMs != 9 || s.deletePolicy || !s.compacted {
		t.Errorf("compact topic: %+v, deletePolicy %v", s.storage, s.deletePolicy)
	}
	s = tbl.settings(map[string]string{"cleanup.policy": "compact,delete"}, brokerLayers{static: map[string]string{"log.retention.bytes": "100"}})
	if s.storage.RetentionBytes != 100 || !s.deletePolicy || !s.compacted {
		t.Errorf("compact,delete topic: %+v, deletePolicy %v", s.storage, s.deletePolicy)
	}
	if s := tbl.settings(map[string]string{"cleanup.policy": "compact", "max.compaction.lag.ms": "60000"}, brokerLayers{}); s.storage.CompactionRollMs != 60000 {
		t.Errorf("compacted topic with max.compaction.lag.ms: CompactionRollMs %d, want 60000", s.storage.CompactionRollMs)
	}
	if s := tbl.settings(map[string]string{"max.compaction.lag.ms": "60000"}, brokerLayers{}); s.storage.CompactionRollMs != 0 {
		t.Errorf("delete-policy topic: CompactionRollMs %d, want 0", s.storage.CompactionRollMs)
	}
	if s := tbl.settings(nil, brokerLayers{}); !s.deletePolicy || s.storage.RetentionBytes != -1 {
		t.Errorf("default topic: deletePolicy %v, retention.bytes %d", s.deletePolicy, s.storage.RetentionBytes)
	}
	// Dynamic at run time as in Kafka (the hours and minutes forms too);
	// the check interval is not.
	for name, dynamic := range map[string]bool{"log.retention.ms": true, "log.retention.bytes": true, "log.cleaner.backoff.ms": true,
		"log.segment.bytes": true, "log.roll.jitter.ms": true, "log.retention.hours": true, "log.retention.minutes": true, "log.retention.check.interval.ms": false} {
		if err := tbl.validateBrokerConfig(name, "1000"); (err == nil) != dynamic {
			t.Errorf("%s: dynamic %v, got %v", name, dynamic, err)
		}
	}
}
