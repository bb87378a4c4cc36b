package broker

// IncrementalAlterConfigs (key 44), v0-v1 (KIP-339).
//
// Behavior:
//   - Changes only the configs named, each with one operation: SET (0) gives
//     it a value; DELETE (1) removes the explicit value so it is inherited
//     again (deleting what is not set does nothing); APPEND (2) and
//     SUBTRACT (3) add or remove comma-separated items of a LIST config,
//     starting from its explicit value or else Kafka's default, as Kafka does.
//     APPEND / SUBTRACT on a config of another type gets INVALID_CONFIG; an
//     unknown operation INVALID_REQUEST.
//   - Resources, validation and errors are those of AlterConfigs: TOPIC and
//     BROKER ("" or this broker's id); a resource named twice, a config named
//     twice in one resource, or a null value for anything but DELETE gets
//     INVALID_REQUEST; invalid topic values INVALID_CONFIG; broker configs that
//     are unknown, not changeable at run time or invalid INVALID_REQUEST.
//     BROKER_LOGGER gets INVALID_REQUEST: Gregor has no per-logger levels.
//   - ValidateOnly checks everything and changes nothing. Otherwise the
//     resulting set is stored and the settings of the open partitions
//     re-resolved before the response.
//   - Responses follow the request's order.

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) incrementalAlterConfigsHandler() handler {
	return handle(kmsg.IncrementalAlterConfigs.Int16(), 0, 1, b.handleIncrementalAlterConfigs)
}

func (b *Broker) handleIncrementalAlterConfigs(c *conn, req *kmsg.IncrementalAlterConfigsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	seen := make(map[configResourceKey]int, len(req.Resources))
	for i := range req.Resources {
		seen[configResourceKey{req.Resources[i].ResourceType, req.Resources[i].ResourceName}]++
	}
	for i := range req.Resources {
		rr := &req.Resources[i]
		sr := kmsg.NewIncrementalAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		var err error
		if seen[configResourceKey{rr.ResourceType, rr.ResourceName}] > 1 {
			err = errDuplicateResource()
		} else {
			err = b.incrementalAlterConfigs(c.ctx, rr, req.ValidateOnly)
		}
		if err != nil {
			sr.ErrorCode = errCode(err)
			sr.ErrorMessage = adminMessage(err)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

// incrementalAlterConfigs applies the operations of one resource.
func (b *Broker) incrementalAlterConfigs(ctx context.Context, rr *kmsg.IncrementalAlterConfigsRequestResource, validateOnly bool) error {
	names := make([]string, 0, len(rr.Configs))
	var nulls []string
	for _, cfg := range rr.Configs {
		names = append(names, cfg.Name)
		if cfg.Op != kmsg.IncrementalAlterConfigOpDelete && cfg.Value == nil {
			nulls = append(nulls, cfg.Name)
		}
	}
	if err := checkAlterShape(names, nulls); err != nil {
		return err
	}
	t, err := b.configTarget(rr.ResourceType, rr.ResourceName)
	if err != nil {
		return err
	}
	next := maps.Clone(t.current)
	if next == nil {
		next = make(map[string]string, len(rr.Configs))
	}
	for _, cfg := range rr.Configs {
		switch cfg.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			if err := b.checkAlteredConfig(t, cfg.Name, *cfg.Value); err != nil {
				return err
			}
			next[cfg.Name] = *cfg.Value
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(next, cfg.Name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			value, err := b.alterListConfig(t, next, cfg.Name, cfg.Op, *cfg.Value)
			if err != nil {
				return err
			}
			next[cfg.Name] = value
		default:
			return adminErrorf(kerr.InvalidRequest, "Unknown operation type %d", cfg.Op)
		}
	}
	if validateOnly {
		return nil
	}
	return b.storeConfigs(ctx, t, next)
}

// alterListConfig applies APPEND or SUBTRACT to a LIST config and returns
// the checked new value. The starting list is the explicit value in next,
// else Kafka's default for the config.
func (b *Broker) alterListConfig(t configTarget, next map[string]string, name string, op kmsg.IncrementalAlterConfigOp, items string) (string, error) {
	d, known := b.targetConfigDef(t, name)
	if !known {
		if err := b.checkAlteredConfig(t, name, items); err != nil {
			return "", err // the unknown-config error of the resource's kind
		}
		return "", adminErrorf(kerr.InvalidConfig, "Unknown config %s.", name)
	}
	if d.typ != kmsg.ConfigTypeList {
		return "", adminErrorf(kerr.InvalidConfig, "Can't %s to key %s because its type is not LIST.", op, name)
	}
	base, set := next[name]
	if !set && d.def != nil {
		base = *d.def
	}
	list := splitConfigList(base)
	for _, item := range splitConfigList(items) {
		if op == kmsg.IncrementalAlterConfigOpAppend {
			if !slices.Contains(list, item) {
				list = append(list, item)
			}
		} else {
			list = slices.DeleteFunc(list, func(v string) bool { return v == item })
		}
	}
	value := strings.Join(list, ",")
	if err := b.checkAlteredConfig(t, name, value); err != nil {
		return "", err
	}
	return value, nil
}

// splitConfigList splits a LIST config value into its non-empty items.
func splitConfigList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item != "" {
			out = append(out, item)
		}
	}
	return out
}
