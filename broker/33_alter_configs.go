package broker

// AlterConfigs (key 33), v0-v2. Deprecated by IncrementalAlterConfigs (KIP-339).
//
// Behavior:
//   - Replaces the whole set of explicitly set configs of each resource with
//     the configs given: a config left out returns to its inherited value.
//   - Resources: TOPIC (the topic must exist: UNKNOWN_TOPIC_OR_PARTITION;
//     invalid names INVALID_TOPIC_EXCEPTION) and BROKER, named "" for the
//     cluster-wide default or with this broker's id; other names, and other
//     resource types, get INVALID_REQUEST.
//   - As in Kafka, a resource named twice gets INVALID_REQUEST at every
//     occurrence, as does a config named twice or given a null value.
//   - Topic configs are validated (INVALID_CONFIG); broker configs must be
//     known, changeable at run time and valid (INVALID_REQUEST, Kafka's code).
//   - ValidateOnly checks everything and changes nothing. Otherwise the
//     change is stored and the settings of the open partitions re-resolved
//     before the response, so it applies to the next request.
//   - Responses follow the request's order.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) alterConfigsHandler() handler {
	return handle(kmsg.AlterConfigs.Int16(), 0, 2, b.handleAlterConfigs)
}

func (b *Broker) handleAlterConfigs(c *conn, req *kmsg.AlterConfigsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	seen := make(map[configResourceKey]int, len(req.Resources))
	for i := range req.Resources {
		seen[configResourceKey{req.Resources[i].ResourceType, req.Resources[i].ResourceName}]++
	}
	for i := range req.Resources {
		rr := &req.Resources[i]
		sr := kmsg.NewAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		var err error
		if seen[configResourceKey{rr.ResourceType, rr.ResourceName}] > 1 {
			err = errDuplicateResource()
		} else {
			err = b.alterConfigs(c.ctx, rr, req.ValidateOnly)
		}
		if err != nil {
			sr.ErrorCode = errCode(err)
			sr.ErrorMessage = adminMessage(err)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

// alterConfigs replaces the explicitly set configs of one resource.
func (b *Broker) alterConfigs(ctx context.Context, rr *kmsg.AlterConfigsRequestResource, validateOnly bool) error {
	names := make([]string, 0, len(rr.Configs))
	var nulls []string
	for _, cfg := range rr.Configs {
		names = append(names, cfg.Name)
		if cfg.Value == nil {
			nulls = append(nulls, cfg.Name)
		}
	}
	if err := checkAlterShape(names, nulls); err != nil {
		return err
	}
	if rr.ResourceType == kmsg.ConfigResourceTypeBrokerLogger {
		// Kafka's legacy AlterConfigs never took loggers.
		return adminErrorf(kerr.InvalidRequest, "Unknown resource type %d", rr.ResourceType)
	}
	t, err := b.configTarget(rr.ResourceType, rr.ResourceName)
	if err != nil {
		return err
	}
	next := make(map[string]string, len(rr.Configs))
	for _, cfg := range rr.Configs {
		if err := b.checkAlteredConfig(t, cfg.Name, *cfg.Value); err != nil {
			return err
		}
		next[cfg.Name] = *cfg.Value
	}
	if validateOnly {
		return nil
	}
	return b.storeConfigs(ctx, t, next)
}
