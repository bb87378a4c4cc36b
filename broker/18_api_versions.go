package broker

// ApiVersions (key 18), v0-v5.
//
// Behavior:
//   - Lists exactly the keys and version ranges in the handler registry.
//   - A version the broker does not serve gets UNSUPPORTED_VERSION in a v0
//     response that still carries the list (see registry.go), so newer
//     clients retry with a version we know.
//   - v3+: an invalid client software name or version gets INVALID_REQUEST
//     (KIP-511), with the key list still filled in.

import (
	"regexp"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// clientSoftwarePattern is KIP-511's rule for client software names and versions.
var clientSoftwarePattern = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?$`)

func (b *Broker) apiVersionsHandler() handler {
	return handle(kmsg.ApiVersions.Int16(), 0, 5, b.handleApiVersions)
}

func (b *Broker) handleApiVersions(_ *conn, req *kmsg.ApiVersionsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = b.apiKeys()
	if req.Version >= 3 && (!clientSoftwarePattern.MatchString(req.ClientSoftwareName) || !clientSoftwarePattern.MatchString(req.ClientSoftwareVersion)) {
		resp.ErrorCode = kerr.InvalidRequest.Code
	}
	return resp, nil
}
