package broker

// Limits on what clients may make the broker hold: connections (checked at
// accept) and partitions (checked before a topic or partition is created).
// The memory limits (queued.max.request.bytes, queued.max.response.bytes,
// fetch.max.bytes) are applied where the bytes are: conn.go and
// 01_fetch.go. README "Limits" lists them all with the memory ceiling
// they give.

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// connLimits counts the open connections, in all and per client IP, for
// max.connections and max.connections.per.ip. Protected by Broker.mu.
type connLimits struct {
	perIP map[netip.Addr]int
	// rejected counts connections refused since the last log line about
	// them; lastLog is when that line was written (one a rejectLogEvery).
	rejected int
	lastLog  time.Time
}

// rejectLogEvery rate-limits the log line about refused connections.
const rejectLogEvery = 10 * time.Second

// connAddr is the IP address a connection's limits are counted under.
func connAddr(nc net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{} // not TCP (tests): all such share one count
}

// connCaps are the connection limits that apply to one client IP.
type connCaps struct{ total, perIP int64 }

// connCapsFor resolves max.connections and the per-IP limit for ip (they
// are dynamic). It reads the metadata store, so it is called before b.mu
// is taken.
func (b *Broker) connCapsFor(ip netip.Addr) connCaps {
	caps := connCaps{total: b.brokerConfigInt("max.connections"), perIP: b.brokerConfigInt("max.connections.per.ip")}
	if o, ok := parseIPOverrides(b.brokerConfig("max.connections.per.ip.overrides"))[ip]; ok {
		caps.perIP = o
	}
	return caps
}

// admitLocked decides whether a newly accepted connection from ip may
// stay, and counts it if so. The caller holds b.mu.
func (b *Broker) admitLocked(ip netip.Addr, caps connCaps) bool {
	maxTotal, maxIP := caps.total, caps.perIP
	reason := ""
	switch {
	case int64(len(b.conns)) >= maxTotal:
		reason = "max.connections"
	case int64(b.limits.perIP[ip]) >= maxIP:
		reason = "max.connections.per.ip"
	}
	if reason != "" {
		b.limits.rejected++
		if now := b.now(); now.Sub(b.limits.lastLog) >= rejectLogEvery {
			b.log.Warn().Str("limit", reason).Str("ip", ip.String()).Int("refused", b.limits.rejected).
				Int("connections", len(b.conns)).Msg("refusing connections over the limit")
			b.limits.rejected, b.limits.lastLog = 0, now
		}
		return false
	}
	if b.limits.perIP == nil {
		b.limits.perIP = make(map[netip.Addr]int)
	}
	b.limits.perIP[ip]++
	return true
}

// releaseLocked uncounts a connection from ip that has ended. The caller
// holds b.mu.
func (b *Broker) releaseLocked(ip netip.Addr) {
	if b.limits.perIP[ip] <= 1 {
		delete(b.limits.perIP, ip)
		return
	}
	b.limits.perIP[ip]--
}

// parseIPOverrides parses max.connections.per.ip.overrides ("ip:count,...";
// Kafka also accepts host names, Gregor only addresses). Entries that do not
// parse are skipped: the value was checked when it was set.
func parseIPOverrides(v string) map[netip.Addr]int64 {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	out := make(map[netip.Addr]int64)
	for _, entry := range strings.Split(v, ",") {
		entry = strings.TrimSpace(entry)
		i := strings.LastIndex(entry, ":") // the last: IPv6 addresses hold colons
		if i < 0 {
			continue
		}
		host, count := entry[:i], entry[i+1:]
		addr, err := netip.ParseAddr(strings.Trim(host, "[]"))
		n, nerr := strconv.ParseInt(strings.TrimSpace(count), 10, 32)
		if err != nil || nerr != nil || n < 0 {
			continue
		}
		out[addr.Unmap()] = n
	}
	return out
}

// checkIPOverrides validates max.connections.per.ip.overrides.
func checkIPOverrides(v string) error {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	entries := strings.Split(v, ",")
	if got := len(parseIPOverrides(v)); got != len(entries) {
		return fmt.Errorf("%q is not a list of ip:count with counts >= 0", v)
	}
	return nil
}

// Partition limits. Gregor keeps one etcd key per partition and opens
// files per partition replica, so the counts are bounded well before
// etcd's space quota or the descriptor limit is what fails: max.partitions
// in the cluster and max.broker.partitions replicas per live broker (the
// names of KIP-578, which Kafka has not adopted), besides the
// maxPartitionsPerRequest of one request (19_create_topics.go).

// partitionLimitError says whether adding partitions new partitions with
// replicas replicas in all keeps the cluster within max.partitions and
// max.broker.partitions; nil if it does, else a POLICY_VIOLATION.
func (b *Broker) partitionLimitError(partitions, replicas int64) error {
	if partitions <= 0 {
		return nil
	}
	var have, haveReplicas int64
	for _, t := range b.store.Topics() {
		have += int64(t.Partitions)
		haveReplicas += int64(t.Partitions) * int64(max(t.ReplicationFactor, 1))
	}
	if limit := b.brokerConfigInt("max.partitions"); have+partitions > limit {
		return adminErrorf(kerr.PolicyViolation, "Creating %d partitions would give the cluster %d, over max.partitions (%d).", partitions, have+partitions, limit)
	}
	brokers := int64(len(b.liveBrokers()))
	if limit := b.brokerConfigInt("max.broker.partitions") * brokers; haveReplicas+replicas > limit {
		return adminErrorf(kerr.PolicyViolation, "Creating %d partition replicas would give the cluster %d, over max.broker.partitions (%d) times %d live brokers.", replicas, haveReplicas+replicas, b.brokerConfigInt("max.broker.partitions"), brokers)
	}
	return nil
}

// createTopicsOverLimit answers a CreateTopics request that would take the
// cluster past a partition limit: every topic gets POLICY_VIOLATION and
// nothing is created. It returns nil when the request is within the limits
// (each topic is then checked on its own by the handler). Topics invalid
// on their own (counts below 1, over the per-request limit) are left to
// the handler and not counted.
func (b *Broker) createTopicsOverLimit(req *kmsg.CreateTopicsRequest) *kmsg.CreateTopicsResponse {
	defParts := b.brokerConfigInt("num.partitions")
	defRF := b.brokerConfigInt("default.replication.factor")
	var partitions, replicas int64
	for i := range req.Topics {
		rt := &req.Topics[i]
		p, rf := int64(rt.NumPartitions), int64(rt.ReplicationFactor)
		if len(rt.ReplicaAssignment) > 0 {
			p, rf = int64(len(rt.ReplicaAssignment)), int64(len(rt.ReplicaAssignment[0].Replicas))
		}
		if p < 0 {
			p = defParts
		}
		if rf < 0 {
			rf = defRF
		}
		if p <= 0 || p > maxPartitionsPerRequest || rf <= 0 || rf > math.MaxInt16 {
			continue // invalid on its own: the handler answers it
		}
		partitions += p
		replicas += p * rf
	}
	err := b.partitionLimitError(partitions, replicas)
	if err == nil {
		return nil
	}
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	resp.SetVersion(req.Version)
	for i := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = req.Topics[i].Topic
		st.ErrorCode, st.ErrorMessage = errCode(err), adminMessage(err)
		st.NumPartitions, st.ReplicationFactor = -1, -1
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// createPartitionsOverLimit is createTopicsOverLimit for CreatePartitions.
func (b *Broker) createPartitionsOverLimit(req *kmsg.CreatePartitionsRequest) *kmsg.CreatePartitionsResponse {
	var partitions, replicas int64
	for i := range req.Topics {
		rt := &req.Topics[i]
		t, ok := b.store.Topic(rt.Topic)
		if !ok || rt.Count <= t.Partitions {
			continue // the handler answers these
		}
		add := int64(rt.Count - t.Partitions)
		if add > maxPartitionsPerRequest {
			continue // the handler refuses it on its own
		}
		partitions += add
		replicas += add * int64(max(t.ReplicationFactor, 1))
	}
	err := b.partitionLimitError(partitions, replicas)
	if err == nil {
		return nil
	}
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	resp.SetVersion(req.Version)
	for i := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = req.Topics[i].Topic
		st.ErrorCode, st.ErrorMessage = errCode(err), adminMessage(err)
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
