package broker

// DescribeCluster (key 60), v0-v2.
//
// Behavior:
//   - Lists the live brokers (this one always included) with host, port and
//     rack, the cluster id, and this broker as the controller.
//   - Cluster authorized operations are Kafka's "not requested" value unless
//     requested; then every CLUSTER operation, as Kafka reports when no
//     authorizer is configured (Gregor has none).
//   - v1+: endpoint type 1 (brokers) is served. Type 2 (controllers) gets
//     MISMATCHED_ENDPOINT_TYPE, as a Kafka broker answers (Gregor has no
//     separate controller endpoint); any other type UNSUPPORTED_ENDPOINT_TYPE.
//   - v2: no broker is ever fenced, so IncludeFencedBrokers changes nothing.

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Endpoint types of DescribeCluster v1+ (KIP-919).
const (
	endpointTypeBrokers     = 1
	endpointTypeControllers = 2
)

// clusterOperationsAll is the bit field of every operation on the CLUSTER
// resource, which is what Kafka reports as authorized without an authorizer.
var clusterOperationsAll = aclOperationBits(
	kmsg.ACLOperationCreate,
	kmsg.ACLOperationClusterAction,
	kmsg.ACLOperationDescribeConfigs,
	kmsg.ACLOperationAlterConfigs,
	kmsg.ACLOperationIdempotentWrite,
	kmsg.ACLOperationAlter,
	kmsg.ACLOperationDescribe,
)

func aclOperationBits(ops ...kmsg.ACLOperation) int32 {
	var bits int32
	for _, op := range ops {
		bits |= 1 << op
	}
	return bits
}

func (b *Broker) describeClusterHandler() handler {
	return handle(kmsg.DescribeCluster.Int16(), 0, 2, b.handleDescribeCluster)
}

func (b *Broker) handleDescribeCluster(c *conn, req *kmsg.DescribeClusterRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	if req.Version >= 1 {
		switch req.EndpointType {
		case endpointTypeBrokers:
		case endpointTypeControllers:
			resp.ErrorCode = kerr.MismatchedEndpointType.Code
			resp.ErrorMessage = str("The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER")
			return resp, nil
		default:
			resp.ErrorCode = kerr.UnsupportedEndpointType.Code
			resp.ErrorMessage = str("Unsupported endpoint type " + strconv.Itoa(int(req.EndpointType)))
			return resp, nil
		}
	}
	resp.EndpointType = endpointTypeBrokers
	resp.ClusterID = b.store.ClusterID()
	resp.ControllerID = b.controllerID()
	resp.ClusterAuthorizedOperations = authorizedOperationsUnknown
	if req.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = clusterOperationsAll
	}
	for _, br := range b.liveBrokers() {
		db := kmsg.NewDescribeClusterResponseBroker()
		db.NodeID = br.NodeID
		db.Host, db.Port = br.EndpointFor(c.listener)
		if br.Rack != "" {
			db.Rack = str(br.Rack)
		}
		resp.Brokers = append(resp.Brokers, db)
	}
	return resp, nil
}
