package broker

import (
	"errors"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregorbroker/gregor/protocol"
)

// handler is one registered API: the versions served and the function
// that turns a request into a response. A handler never touches the
// socket; a nil response means "send nothing" (acks=0 produce). An error
// closes the connection.
type handler struct {
	key      int16
	min, max int16
	fn       func(*conn, kmsg.Request) (kmsg.Response, error)
}

// handle adapts a typed handler function to a registry entry.
func handle[R kmsg.Request](key, minVersion, maxVersion int16, fn func(*conn, R) (kmsg.Response, error)) handler {
	return handler{key: key, min: minVersion, max: maxVersion, fn: func(c *conn, req kmsg.Request) (kmsg.Response, error) {
		r, ok := req.(R)
		if !ok {
			return nil, fmt.Errorf("broker: %s handler got %T", kmsg.NameForKey(key), req)
		}
		return fn(c, r)
	}}
}

// registry is the immutable table of handlers, indexed by api key. ApiVersions
// is derived from it, so what is advertised is exactly what is served.
type registry struct {
	byKey map[int16]handler
	keys  []int16 // sorted
}

func (b *Broker) buildRegistry() (*registry, error) {
	all := []handler{
		b.produceHandler(),
		b.fetchHandler(),
		b.listOffsetsHandler(),
		b.metadataHandler(),
		b.offsetCommitHandler(),
		b.offsetFetchHandler(),
		b.findCoordinatorHandler(),
		b.joinGroupHandler(),
		b.heartbeatHandler(),
		b.leaveGroupHandler(),
		b.syncGroupHandler(),
		b.initProducerIDHandler(),
		b.addPartitionsToTxnHandler(),
		b.addOffsetsToTxnHandler(),
		b.endTxnHandler(),
		b.writeTxnMarkersHandler(),
		b.txnOffsetCommitHandler(),
		b.describeGroupsHandler(),
		b.listGroupsHandler(),
		b.apiVersionsHandler(),
		b.offsetForLeaderEpochHandler(),
		b.createTopicsHandler(),
		b.deleteTopicsHandler(),
		b.deleteRecordsHandler(),
		b.describeConfigsHandler(),
		b.alterConfigsHandler(),
		b.describeLogDirsHandler(),
		b.createPartitionsHandler(),
		b.deleteGroupsHandler(),
		b.electLeadersHandler(),
		b.incrementalAlterConfigsHandler(),
		b.alterPartitionReassignmentsHandler(),
		b.listPartitionReassignmentsHandler(),
		b.offsetDeleteHandler(),
		b.describeClusterHandler(),
		b.describeProducersHandler(),
		b.describeTransactionsHandler(),
		b.listTransactionsHandler(),
		b.consumerGroupHeartbeatHandler(),
		b.consumerGroupDescribeHandler(),
	}
	return newRegistry(all)
}

func newRegistry(all []handler) (*registry, error) {
	r := &registry{byKey: make(map[int16]handler, len(all))}
	for _, h := range all {
		if _, dup := r.byKey[h.key]; dup {
			return nil, fmt.Errorf("broker: api key %d (%s) registered twice", h.key, kmsg.NameForKey(h.key))
		}
		req := kmsg.RequestForKey(h.key)
		if req == nil || h.min < 0 || h.min > h.max || h.max > req.MaxVersion() {
			return nil, fmt.Errorf("broker: api key %d registered with bad versions %d..%d", h.key, h.min, h.max)
		}
		r.byKey[h.key] = h
		r.keys = append(r.keys, h.key)
	}
	sort.Slice(r.keys, func(i, j int) bool { return r.keys[i] < r.keys[j] })
	return r, nil
}

// dispatch runs the handler for one decoded request.
func (b *Broker) dispatch(c *conn, hdr protocol.RequestHeader, req kmsg.Request) (kmsg.Response, error) {
	h, ok := b.handlers.byKey[hdr.Key]
	if !ok {
		return nil, fmt.Errorf("broker: api %s (key %d) is not supported", kmsg.NameForKey(hdr.Key), hdr.Key)
	}
	if hdr.Version < h.min || hdr.Version > h.max {
		if hdr.Key == kmsg.ApiVersions.Int16() {
			return b.unsupportedApiVersions(), nil
		}
		return nil, fmt.Errorf("broker: %s v%d is not supported (v%d..v%d)", kmsg.NameForKey(hdr.Key), hdr.Version, h.min, h.max)
	}
	c.clientID = hdr.ClientID
	return h.fn(c, req)
}

// answerUnparsable returns the response owed to a request that did not
// decode, or nil to close the connection. Only ApiVersions is answered: a
// client newer than kmsg asks with a version we cannot parse and must be
// told our versions so it can downgrade.
func (b *Broker) answerUnparsable(hdr protocol.RequestHeader, err error) kmsg.Response {
	if hdr.Key == kmsg.ApiVersions.Int16() && errors.Is(err, protocol.ErrUnknownVersion) {
		return b.unsupportedApiVersions()
	}
	return nil
}

// unsupportedApiVersions is the v0 ApiVersions response Kafka sends to a
// version it does not know: UNSUPPORTED_VERSION with the full key list.
func (b *Broker) unsupportedApiVersions() kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	resp.ApiKeys = b.apiKeys()
	return &versionPinned{Response: resp}
}

// versionPinned keeps a response at the version it was built for, whatever
// version the request had.
type versionPinned struct{ kmsg.Response }

// SetVersion ignores the request's version.
func (versionPinned) SetVersion(int16) {}

func (b *Broker) apiKeys() []kmsg.ApiVersionsResponseApiKey {
	keys := make([]kmsg.ApiVersionsResponseApiKey, 0, len(b.handlers.keys))
	for _, k := range b.handlers.keys {
		h := b.handlers.byKey[k]
		ak := kmsg.NewApiVersionsResponseApiKey()
		ak.ApiKey, ak.MinVersion, ak.MaxVersion = h.key, h.min, h.max
		keys = append(keys, ak)
	}
	return keys
}
