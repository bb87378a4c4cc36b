package broker

// DescribeConfigs (key 32), v0-v4.
//
// Behavior:
//   - TOPIC resources list every topic config Gregor knows, resolved in
//     Kafka's order: the topic's own value (DYNAMIC_TOPIC_CONFIG), else the
//     broker synonym's dynamic per-broker, dynamic cluster-default or static
//     value, else Kafka's default (DEFAULT_CONFIG). Topic configs are never
//     read-only. Invalid names get INVALID_TOPIC_EXCEPTION, unknown topics
//     UNKNOWN_TOPIC_OR_PARTITION. A topic whose metadata value cannot be
//     read and of which the broker has no last good state gets the
//     retriable LEADER_NOT_AVAILABLE, as in Metadata: it exists, but cannot
//     be served until the value is repaired.
//   - BROKER resources named with this broker's id list every broker config,
//     read-only unless it can be changed at run time; the empty name lists
//     only the cluster-wide dynamic defaults that are set, as Kafka does. Any
//     other name gets INVALID_REQUEST.
//   - BROKER_LOGGER and every other resource type get INVALID_REQUEST: Gregor
//     has no per-logger levels.
//   - ConfigNames narrows the list; null or empty means all, unknown names
//     are left out.
//   - v0 reports IsDefault (source is DEFAULT_CONFIG); v1+ the source, and
//     synonyms, strongest first, when IncludeSynonyms; v3+ the config type,
//     and documentation when IncludeDocumentation. Nothing is sensitive.
//   - Responses follow the request's order.

import (
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) describeConfigsHandler() handler {
	return handle(kmsg.DescribeConfigs.Int16(), 0, 4, b.handleDescribeConfigs)
}

func (b *Broker) handleDescribeConfigs(_ *conn, req *kmsg.DescribeConfigsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	layers := b.layers() // one view of the broker configs for the whole request
	for i := range req.Resources {
		rr := &req.Resources[i]
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		d := configDescriber{b: b, req: req, layers: layers, wanted: wantedConfigs(rr.ConfigNames)}
		var err error
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			sr.Configs, err = d.topic(rr.ResourceName)
		case kmsg.ConfigResourceTypeBroker:
			sr.Configs, err = d.broker(rr.ResourceName)
		case kmsg.ConfigResourceTypeBrokerLogger:
			err = adminErrorf(kerr.InvalidRequest, "BROKER_LOGGER resources are not supported.")
		default:
			err = adminErrorf(kerr.InvalidRequest, "Unsupported resource type: %d", rr.ResourceType)
		}
		if err != nil {
			sr.Configs = nil
			sr.ErrorCode = errCode(err)
			sr.ErrorMessage = adminMessage(err)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

// wantedConfigs returns the config name filter of one resource; nil wants all.
func wantedConfigs(names []string) map[string]bool {
	if len(names) == 0 {
		return nil
	}
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// configDescriber builds the config entries of one resource.
type configDescriber struct {
	b      *Broker
	req    *kmsg.DescribeConfigsRequest
	layers brokerLayers
	wanted map[string]bool // nil: all
}

func (d *configDescriber) wants(name string) bool { return d.wanted == nil || d.wanted[name] }

func (d *configDescriber) topic(name string) ([]kmsg.DescribeConfigsResponseResourceConfig, error) {
	if err := validateTopicName(name); err != nil {
		return nil, adminErrorf(kerr.InvalidTopicException, "%v", err)
	}
	t, ok := d.b.store.Topic(name)
	if !ok {
		if err := d.b.store.TopicFault(name); err != nil {
			return nil, adminErrorf(kerr.LeaderNotAvailable, "The metadata of topic '%s' cannot be read: %v", name, err)
		}
		return nil, adminErrorf(kerr.UnknownTopicOrPartition, "Topic '%s' does not exist.", name)
	}
	defs := d.b.configs.topic
	out := make([]kmsg.DescribeConfigsResponseResourceConfig, 0, len(defs))
	for i := range defs {
		if d.wants(defs[i].name) {
			out = append(out, d.entry(d.b.configs.resolveTopic(&defs[i], t.Configs, d.layers), false))
		}
	}
	return out, nil
}

func (d *configDescriber) broker(name string) ([]kmsg.DescribeConfigsResponseResourceConfig, error) {
	if name == "" {
		return d.clusterDefaults(), nil
	}
	if err := d.b.checkBrokerResourceName(name, " or empty string"); err != nil {
		return nil, err
	}
	defs := d.b.configs.broker
	out := make([]kmsg.DescribeConfigsResponseResourceConfig, 0, len(defs))
	for i := range defs {
		if d.wants(defs[i].name) {
			out = append(out, d.entry(d.b.configs.resolveBroker(&defs[i], d.layers), !defs[i].dynamic))
		}
	}
	return out, nil
}

// clusterDefaults lists the cluster-wide dynamic broker configs that are set.
func (d *configDescriber) clusterDefaults() []kmsg.DescribeConfigsResponseResourceConfig {
	names := make([]string, 0, len(d.layers.dynamicDefault))
	for n := range d.layers.dynamicDefault {
		if d.wants(n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	out := make([]kmsg.DescribeConfigsResponseResourceConfig, 0, len(names))
	for _, n := range names {
		value := d.layers.dynamicDefault[n]
		def, known := d.b.configs.brokerIdx[n]
		if !known { // set by a newer broker; report what is stored
			def = &configDef{name: n, typ: kmsg.ConfigTypeString, enforced: false}
		}
		syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
		syn.Name, syn.Value, syn.Source = n, str(value), kmsg.ConfigSourceDynamicDefaultBrokerConfig
		cv := configValue{
			def:      def,
			value:    str(value),
			source:   kmsg.ConfigSourceDynamicDefaultBrokerConfig,
			synonyms: []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym{syn},
		}
		out = append(out, d.entry(cv, !def.dynamic))
	}
	return out
}

// entry renders one resolved config for the response.
func (d *configDescriber) entry(cv configValue, readOnly bool) kmsg.DescribeConfigsResponseResourceConfig {
	rc := kmsg.NewDescribeConfigsResponseResourceConfig()
	rc.Name = cv.def.name
	rc.Value = cloneString(cv.value)
	rc.ReadOnly = readOnly
	rc.Source = cv.source
	rc.IsDefault = cv.source == kmsg.ConfigSourceDefaultConfig
	rc.ConfigType = cv.def.typ
	if d.req.IncludeSynonyms {
		rc.ConfigSynonyms = make([]kmsg.DescribeConfigsResponseResourceConfigConfigSynonym, 0, len(cv.synonyms))
		for _, s := range cv.synonyms {
			s.Value = cloneString(s.Value)
			rc.ConfigSynonyms = append(rc.ConfigSynonyms, s)
		}
	}
	if d.req.IncludeDocumentation {
		rc.Documentation = str(configDocumentation(cv.def))
	}
	return rc
}

// configDocumentation is a config's documentation, saying so when Gregor
// does not act on it.
func configDocumentation(d *configDef) string {
	if d.enforced {
		return d.doc
	}
	if d.doc == "" {
		return "Gregor stores and reports this config but does not act on it yet."
	}
	return d.doc + ". Gregor stores and reports this config but does not act on it yet."
}

// checkBrokerResourceName checks a non-empty BROKER resource name: it must
// be this broker's id. alternative names what else would have been
// accepted, for the message.
func (b *Broker) checkBrokerResourceName(name, alternative string) error {
	id, err := strconv.ParseInt(name, 10, 32)
	if err != nil {
		return adminErrorf(kerr.InvalidRequest, "Broker id must be an integer, but it is: %s", name)
	}
	if int32(id) != b.cfg.NodeID {
		return adminErrorf(kerr.InvalidRequest, "Unexpected broker id, expected %d%s, but received %s", b.cfg.NodeID, alternative, name)
	}
	return nil
}
