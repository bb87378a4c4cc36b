package metadata

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// failingPutKV fails every Put of a broker registration while fail is
// set, without writing, as an etcd that cannot commit in time does.
type failingPutKV struct {
	clientv3.KV
	fail   atomic.Bool
	failed atomic.Int32
}

func (k *failingPutKV) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	if k.fail.Load() && strings.Contains(key, "/"+brokersDir) {
		k.failed.Add(1)
		return nil, errors.New("injected: put not committed")
	}
	return k.KV.Put(ctx, key, val, opts...)
}

// openWithKV opens a store on te whose client's key-value calls go
// through kv (made from the client's own).
func openWithKV(t *testing.T, te *testEtcd, kv func(clientv3.KV) clientv3.KV) *EtcdStore {
	t.Helper()
	cli := te.rawClient(t)
	cli.KV = kv(cli.KV)
	s := newEtcdStore(zerolog.Nop(), cli, "/gregor/", 3*time.Second)
	if err := s.load(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func (s *EtcdStore) leaseForTest() clientv3.LeaseID {
	s.reg.Lock()
	defer s.reg.Unlock()
	return s.reg.lease
}

// TestEtcdRegistrationRetriesAFailedRenewal: the lease is lost and the
// first writes of the registration under a new one fail. The store keeps
// trying until one succeeds. (It used to keep the lease granted for the
// failed write, renew it, and never write the registration again: the
// broker stayed out of Metadata for good while thinking itself live.)
func TestEtcdRegistrationRetriesAFailedRenewal(t *testing.T) {
	te := startTestEtcd(t, zerolog.Nop())
	ctx := testCtx(t)
	kv := &failingPutKV{}
	s := openWithKV(t, te, func(inner clientv3.KV) clientv3.KV { kv.KV = inner; return kv })
	watcher := (&etcdHarness{endpoints: te.e.Endpoints()}).open(t)
	b := Broker{NodeID: 5, Host: "h5", Port: 9092}
	if err := s.RegisterBroker(ctx, b); err != nil {
		t.Fatal(err)
	}
	lease := s.leaseForTest()

	kv.fail.Store(true)
	if _, err := te.rawClient(t).Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the registration to go with its lease", func() bool { return len(watcher.Brokers()) == 0 })
	waitFor(t, "the store to try writing the registration again after a failed write", func() bool { return kv.failed.Load() >= 2 })
	if s.RegistrationAlive() {
		t.Error("RegistrationAlive with the registration gone")
	}
	kv.fail.Store(false)
	waitFor(t, "the registration to be back", func() bool { return reflect.DeepEqual(watcher.Brokers(), []Broker{b}) })
	waitFor(t, "RegistrationAlive again", s.RegistrationAlive)
	if s.leaseForTest() == lease {
		t.Fatal("registered again under the revoked lease")
	}
}

// TestEtcdRegistrationRestoredWhileLeaseLives: the registration key goes
// away, or is left under a lease nobody renews (a write whose answer was
// lost), while the lease the store keeps alive lives on. The store sees
// it in its cache and registers again.
func TestEtcdRegistrationRestoredWhileLeaseLives(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(ctx context.Context, cli *clientv3.Client, key string) error
	}{
		{"deleted", func(ctx context.Context, cli *clientv3.Client, key string) error {
			_, err := cli.Delete(ctx, key)
			return err
		}},
		{"under another lease", func(ctx context.Context, cli *clientv3.Client, key string) error {
			got, err := cli.Get(ctx, key)
			if err != nil || len(got.Kvs) != 1 {
				return errors.Join(err, errors.New("registration not found"))
			}
			g, err := cli.Grant(ctx, 60)
			if err != nil {
				return err
			}
			_, err = cli.Put(ctx, key, string(got.Kvs[0].Value), clientv3.WithLease(g.ID))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			te := startTestEtcd(t, zerolog.Nop())
			ctx := testCtx(t)
			s := openWithKV(t, te, func(kv clientv3.KV) clientv3.KV { return kv })
			b := Broker{NodeID: 6, Host: "h6", Port: 9092}
			if err := s.RegisterBroker(ctx, b); err != nil {
				t.Fatal(err)
			}
			lease := s.leaseForTest()
			raw := te.rawClient(t)
			if err := tc.spoil(ctx, raw, s.brokerKey(b.NodeID)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the store to register again under a lease it keeps alive", func() bool {
				got, err := raw.Get(ctx, s.brokerKey(b.NodeID))
				return err == nil && len(got.Kvs) == 1 && clientv3.LeaseID(got.Kvs[0].Lease) == s.leaseForTest() &&
					s.leaseForTest() != lease
			})
			waitFor(t, "the cache to show the registration", func() bool { return reflect.DeepEqual(s.Brokers(), []Broker{b}) })
			waitFor(t, "RegistrationAlive again", s.RegistrationAlive)
		})
	}
}
