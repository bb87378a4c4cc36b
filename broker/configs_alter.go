package broker

// Code shared by AlterConfigs (33_alter_configs.go) and
// IncrementalAlterConfigs (44_incremental_alter_configs.go): which resource a
// request names, the checks Kafka makes before looking at a resource, how
// one config value is validated, and how a resource's new set of explicitly
// set configs is stored.
//
// Both APIs compute the complete new set of explicitly set configs of a
// resource (the topic's configs, or the dynamic configs of this broker or of
// the cluster-wide default) and store it whole; the metadata store replaces
// the set in one write.

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// configResourceKey identifies a resource in an alter request.
type configResourceKey struct {
	typ  kmsg.ConfigResourceType
	name string
}

// errDuplicateResource is Kafka's answer to a resource named twice in one
// alter request, given to every occurrence.
func errDuplicateResource() error {
	return adminErrorf(kerr.InvalidRequest, "Each resource must appear at most once.")
}

// checkAlterShape makes the checks Kafka makes on an alter request's
// resource before looking the resource up: every config name at most once,
// and no null value where one is needed (nulls lists the names with one).
func checkAlterShape(names []string, nulls []string) error {
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if seen[n] {
			return adminErrorf(kerr.InvalidRequest, "Error due to duplicate config keys")
		}
		seen[n] = true
	}
	if len(nulls) > 0 {
		return adminErrorf(kerr.InvalidRequest, "Null value not supported for : %s", strings.Join(nulls, ", "))
	}
	return nil
}

// configTarget is a resource whose explicitly set configs are being altered.
type configTarget struct {
	typ    kmsg.ConfigResourceType
	topic  string // TOPIC: the topic's name
	nodeID int32  // BROKER: this broker's id, or -1 for the cluster-wide default
	// current is the set of explicitly set configs when the target was
	// resolved, owned by the target: storeConfigs compares against it, so
	// callers build the new set in a copy.
	current map[string]string
}

func (t configTarget) isTopic() bool { return t.typ == kmsg.ConfigResourceTypeTopic }

// configTarget resolves an alter request's resource: a topic that exists, or
// this broker ("<node id>") or the cluster-wide broker default ("").
func (b *Broker) configTarget(typ kmsg.ConfigResourceType, name string) (configTarget, error) {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		if err := validateTopicName(name); err != nil {
			return configTarget{}, adminErrorf(kerr.InvalidTopicException, "%v", err)
		}
		t, ok := b.store.Topic(name)
		if !ok {
			return configTarget{}, adminErrorf(kerr.UnknownTopicOrPartition, "The topic '%s' does not exist.", name)
		}
		return configTarget{typ: typ, topic: name, current: t.Configs}, nil
	case kmsg.ConfigResourceTypeBroker:
		nodeID := int32(-1)
		if name != "" {
			if err := b.checkBrokerResourceName(name, ""); err != nil {
				return configTarget{}, err
			}
			nodeID = b.cfg.NodeID
		}
		return configTarget{typ: typ, nodeID: nodeID, current: b.store.BrokerConfigs(nodeID)}, nil
	case kmsg.ConfigResourceTypeBrokerLogger:
		return configTarget{}, adminErrorf(kerr.InvalidRequest, "BROKER_LOGGER resources are not supported.")
	default:
		return configTarget{}, adminErrorf(kerr.InvalidRequest, "Unknown resource type %d", typ)
	}
}

// targetConfigDef returns the definition of a config of the target's kind.
func (b *Broker) targetConfigDef(t configTarget, name string) (*configDef, bool) {
	if t.isTopic() {
		d, ok := b.configs.topicIdx[name]
		return d, ok
	}
	d, ok := b.configs.brokerIdx[name]
	return d, ok
}

// checkAlteredConfig validates one config value being set. Topic configs
// that fail get INVALID_CONFIG; broker configs INVALID_REQUEST, which is
// what Kafka answers (KAFKA-13609), for a config that cannot change at run
// time too.
func (b *Broker) checkAlteredConfig(t configTarget, name, value string) error {
	if t.isTopic() {
		if err := b.configs.validateTopicConfig(name, &value); err != nil {
			return adminErrorf(kerr.InvalidConfig, "%v", err)
		}
		return nil
	}
	if err := b.configs.validateBrokerConfig(name, value); err != nil {
		return adminErrorf(kerr.InvalidRequest, "%v", err)
	}
	return nil
}

// storeConfigs replaces the target's explicitly set configs with configs,
// then re-resolves the settings of the open partitions so the change takes
// effect before the response. Storing what is already there writes nothing.
func (b *Broker) storeConfigs(ctx context.Context, t configTarget, configs map[string]string) error {
	if maps.Equal(t.current, configs) {
		return nil
	}
	var err error
	if t.isTopic() {
		err = b.store.SetTopicConfigs(ctx, t.topic, configs)
	} else {
		err = b.store.SetBrokerConfigs(ctx, t.nodeID, configs)
	}
	if err != nil {
		resource := t.topic
		if !t.isTopic() {
			resource = brokerResourceName(t.nodeID)
		}
		return b.metadataWriteError(err, "alter configs of", resource)
	}
	b.parts.refreshSettings()

	set, removed := configChanges(t.current, configs)
	ev := b.log.Info()
	if t.isTopic() {
		ev = ev.Str("topic", t.topic)
	} else {
		ev = ev.Int32("node_id", t.nodeID) // -1: the cluster-wide default
	}
	ev.Strs("set", set).Strs("removed", removed).Msg("altered " + resourceKind(t) + " configs")
	return nil
}

func resourceKind(t configTarget) string {
	if t.isTopic() {
		return "topic"
	}
	return "broker"
}

func brokerResourceName(nodeID int32) string {
	if nodeID < 0 {
		return "broker default"
	}
	return "broker " + strconv.Itoa(int(nodeID))
}

// configChanges lists what changed from old to new: "name=value" for what
// was set or changed, names for what was removed; both sorted.
func configChanges(old, new map[string]string) (set, removed []string) {
	set, removed = []string{}, []string{}
	for k, v := range new {
		if ov, ok := old[k]; !ok || ov != v {
			set = append(set, k+"="+v)
		}
	}
	for k := range old {
		if _, ok := new[k]; !ok {
			removed = append(removed, k)
		}
	}
	slices.Sort(set)
	slices.Sort(removed)
	return set, removed
}
