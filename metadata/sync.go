package metadata

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Sync implements Store. A linearizable read (etcd's default: the member
// confirms with the raft leader that it has applied everything committed
// before the read) returns the cluster's current revision; the cache is
// then current once the watch has applied that revision. The read asks
// for a count of one key, so it moves no values.
func (s *EtcdStore) Sync(ctx context.Context) error {
	const op = "sync"
	if s.isClosed() {
		return s.opErr(op, ErrClosed)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.prefix+clusterIDKey, clientv3.WithCountOnly())
	if err != nil {
		return s.opErr(op, err)
	}
	if err := s.waitApplied(ctx, resp.Header.Revision); err != nil {
		return s.opErr(op, err)
	}
	return nil
}
