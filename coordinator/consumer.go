package coordinator

// The KIP-848 consumer group protocol: ConsumerGroupHeartbeat with
// server-side assignment.
//
// A group has an epoch that moves whenever its membership, a member's
// subscription, or the partitions of a subscribed topic change; each move
// recomputes the target assignment (uniform or range assignor) for that
// epoch. Each member then converges on its target one heartbeat at a time:
//
//  1. partitions it owns that are no longer its target are revoked first:
//     it is told its assignment without them and keeps its epoch until a
//     heartbeat shows it no longer owns them (or its rebalance timeout
//     passes and it is fenced);
//  2. then it moves to the target epoch and receives its new partitions as
//     soon as no other member still owns them.
//
// So no partition is ever owned by two members. Members that stop
// heartbeating for group.consumer.session.timeout.ms are removed. As with
// the classic protocol, every method runs under the group's mu and takes
// the time as an argument.

import (
	"maps"
	"regexp"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TopicInfo is what the consumer protocol needs to know of a topic.
type TopicInfo struct {
	Name       string
	ID         [16]byte
	Partitions int32
}

// Topics is the coordinator's view of the cluster's topics.
type Topics interface {
	TopicByName(name string) (TopicInfo, bool)
	TopicByID(id [16]byte) (TopicInfo, bool)
	// TopicNames lists every topic, internal ones included, for regex
	// subscriptions (Kafka matches a regex against all topics).
	TopicNames() []string
}

// tp is a partition by topic id.
type tp struct {
	topic     [16]byte
	partition int32
}

// assignment is a set of partitions.
type assignment map[tp]struct{}

func (a assignment) clone() assignment {
	out := make(assignment, len(a))
	for k := range a {
		out[k] = struct{}{}
	}
	return out
}

func (a assignment) equal(b assignment) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// consumerMember is a KIP-848 member.
type consumerMember struct {
	id               string
	instanceID       *string
	rackID           *string
	clientID         string
	clientHost       string
	epoch            int32
	previousEpoch    int32
	subscribed       []string       // sorted topic names, as sent
	regex            *regexp.Regexp // v1 subscription regex (full match), or nil
	regexSrc         string
	effective        []string // sorted: subscribed plus the topics regex matches now
	assignor         string
	rebalanceTimeout time.Duration
	current          assignment // what the member may own now
	revoking         assignment // what it was told to give up and has not yet
	sent             assignment // last assignment sent; nil forces a send
	sessionDeadline  time.Time
	revokeDeadline   time.Time // zero unless revoking
	leftStatic       bool      // a static member that left with epoch -2
}

// consumerState is the KIP-848 part of a group.
type consumerState struct {
	epoch           int32
	assignmentEpoch int32
	assignor        string
	members         map[string]*consumerMember
	statics         map[string]string // instance id -> member id
	target          map[string]assignment
	topicsSeen      map[string]TopicInfo // subscribed topics at the last target computation (Partitions 0: missing)
	stateSince      time.Time

	// stored holds the value bytes last written under each of the group's
	// KIP-848 record keys; touched lists the members whose records may
	// have changed since, and touchAll says every member's may have
	// (consumer_records.go).
	stored   map[consumerKey][]byte
	touched  map[string]struct{}
	touchAll bool
}

func newConsumerState() consumerState {
	return consumerState{members: make(map[string]*consumerMember), statics: make(map[string]string), target: make(map[string]assignment)}
}

// ConsumerHeartbeatArgs is a ConsumerGroupHeartbeat as the state machine
// needs it.
type ConsumerHeartbeatArgs struct {
	Version          int16
	MemberID         string
	MemberEpoch      int32
	InstanceID       *string
	RackID           *string
	RebalanceTimeout time.Duration // < 0: unchanged
	Subscribed       []string      // nil: unchanged
	Regex            *string       // nil: unchanged; "": no regex
	Assignor         *string       // nil: unchanged
	Owned            []kmsg.ConsumerGroupHeartbeatRequestTopic
	OwnedSet         bool // Owned was sent (not null)
	ClientID         string
	ClientHost       string
}

// ConsumerHeartbeatResult is the answer to a ConsumerGroupHeartbeat.
type ConsumerHeartbeatResult struct {
	Err        *kerr.Error
	Message    string
	MemberID   string
	Epoch      int32
	Assignment *kmsg.ConsumerGroupHeartbeatResponseAssignment
}

// validateConsumerHeartbeat checks a heartbeat on its own, before any
// group is looked up or created, as Kafka does: a malformed heartbeat
// never creates a group.
func validateConsumerHeartbeat(a ConsumerHeartbeatArgs) (*kerr.Error, string) {
	if a.InstanceID != nil && *a.InstanceID == "" {
		return kerr.InvalidRequest, "InstanceId can't be empty"
	}
	switch {
	case a.MemberEpoch > 0 || a.MemberEpoch == -1:
		if a.MemberID == "" {
			return kerr.InvalidRequest, "MemberId can't be empty"
		}
	case a.MemberEpoch == 0:
		if a.Subscribed == nil && (a.Regex == nil || *a.Regex == "") {
			return kerr.InvalidRequest, "SubscribedTopicNames or SubscribedTopicRegex must be set when joining"
		}
		if len(a.Owned) > 0 {
			return kerr.InvalidRequest, "TopicPartitions must be empty when (re-)joining"
		}
	case a.MemberEpoch == -2:
		if a.InstanceID == nil {
			return kerr.InvalidRequest, "InstanceId can't be null when leaving with epoch -2"
		}
	default:
		return kerr.InvalidRequest, "MemberEpoch is invalid"
	}
	if a.Assignor != nil && *a.Assignor != "uniform" && *a.Assignor != "range" {
		return kerr.UnsupportedAssignor, "supported assignors: uniform, range"
	}
	if a.Regex != nil && *a.Regex != "" {
		if _, err := compileSubscription(*a.Regex); err != nil {
			return kerr.InvalidRegularExpression, err.Error()
		}
	}
	return nil, ""
}

// consumerHeartbeat handles one ConsumerGroupHeartbeat that
// validateConsumerHeartbeat accepted.
func (g *group) consumerHeartbeat(a ConsumerHeartbeatArgs, now time.Time, c *Coordinator) ConsumerHeartbeatResult {
	fail := func(err *kerr.Error, msg string) ConsumerHeartbeatResult {
		return ConsumerHeartbeatResult{Err: err, Message: msg, MemberID: a.MemberID, Epoch: -1}
	}
	if g.kind == kindClassic && len(g.c.members) > 0 {
		return fail(kerr.GroupIDNotFound, "the group is a classic group with members")
	}
	ks := &g.k
	if g.kind != kindConsumer {
		g.kind = kindConsumer
		ks.stateSince = now
	}
	if a.MemberEpoch != 0 {
		if err := ks.checkInstanceLocked(a.MemberID, a.InstanceID); err != nil {
			return fail(err, "")
		}
	}
	switch a.MemberEpoch {
	case -1, -2:
		m := ks.members[a.MemberID]
		if m == nil {
			return fail(kerr.UnknownMemberID, "")
		}
		if a.MemberEpoch == -2 && m.instanceID != nil {
			// A static member that will come back: keep its partitions
			// until its session ends.
			m.leftStatic = true
			m.previousEpoch = m.epoch // its next incarnation starts from epoch 0
			m.sessionDeadline = now.Add(c.cfg.ConsumerSessionTimeout)
			return ConsumerHeartbeatResult{MemberID: m.id, Epoch: -2}
		}
		g.removeConsumerMember(m.id, now, c)
		return ConsumerHeartbeatResult{MemberID: a.MemberID, Epoch: a.MemberEpoch}
	case 0:
		return g.consumerJoin(a, now, c)
	}
	m := ks.members[a.MemberID]
	if m == nil {
		return fail(kerr.UnknownMemberID, "")
	}
	if a.MemberEpoch != m.epoch && !(a.MemberEpoch == m.previousEpoch && g.ownedWithin(a, m)) {
		return fail(kerr.FencedMemberEpoch, "")
	}
	m.sessionDeadline = now.Add(c.cfg.ConsumerSessionTimeout)
	if g.updateConsumerMember(m, a) {
		g.bumpConsumerEpoch(now)
	}
	return g.reconcile(m, a, now, c)
}

// checkInstanceLocked is Kafka's throwIfInstanceIdIsFenced for a heartbeat
// of a known member (epoch other than 0) carrying an instance id: the
// instance must be known (UNKNOWN_MEMBER_ID) and held by this member id
// (FENCED_INSTANCE_ID: a newer incarnation took it over).
func (ks *consumerState) checkInstanceLocked(memberID string, instanceID *string) *kerr.Error {
	if instanceID == nil {
		return nil
	}
	owner, ok := ks.statics[*instanceID]
	if !ok {
		return kerr.UnknownMemberID
	}
	if owner != memberID {
		return kerr.FencedInstanceID
	}
	return nil
}

// consumerJoin handles a heartbeat with epoch 0: a new member, or one
// rejoining after it was fenced.
func (g *group) consumerJoin(a ConsumerHeartbeatArgs, now time.Time, c *Coordinator) ConsumerHeartbeatResult {
	ks := &g.k
	if a.RebalanceTimeout < 0 {
		a.RebalanceTimeout = 5 * time.Minute
	}
	id := a.MemberID
	if id == "" {
		id = newMemberID("")[1:]
	}
	if a.InstanceID != nil {
		if oldID, ok := ks.statics[*a.InstanceID]; ok {
			old := ks.members[oldID]
			if old != nil && !old.leftStatic && oldID != id {
				return ConsumerHeartbeatResult{Err: kerr.UnreleasedInstanceID, MemberID: id, Epoch: -1}
			}
			if old != nil {
				// The static member is back: it takes over its predecessor.
				delete(ks.members, oldID)
				ks.touchConsumerMember(oldID)
				ks.touchConsumerMember(id)
				old.id, old.leftStatic = id, false
				old.sent = nil
				old.clientID, old.clientHost = a.ClientID, a.ClientHost
				old.sessionDeadline = now.Add(c.cfg.ConsumerSessionTimeout)
				ks.members[id] = old
				ks.statics[*a.InstanceID] = id
				if t, ok := ks.target[oldID]; ok {
					delete(ks.target, oldID)
					ks.target[id] = t
				}
				if g.updateConsumerMember(old, a) {
					g.bumpConsumerEpoch(now)
				}
				return g.reconcile(old, a, now, c)
			}
		}
	}
	if old := ks.members[id]; old != nil {
		// Rejoining with epoch 0 (after being fenced): start over.
		g.removeConsumerMember(id, now, c)
	}
	if c.cfg.MaxGroupSize > 0 && len(ks.members) >= c.cfg.MaxGroupSize {
		return ConsumerHeartbeatResult{Err: kerr.GroupMaxSizeReached, MemberID: id, Epoch: -1}
	}
	m := &consumerMember{
		id:               id,
		instanceID:       a.InstanceID,
		clientID:         a.ClientID,
		clientHost:       a.ClientHost,
		assignor:         "uniform",
		rebalanceTimeout: a.RebalanceTimeout,
		current:          assignment{},
		revoking:         assignment{},
		sessionDeadline:  now.Add(c.cfg.ConsumerSessionTimeout),
	}
	ks.members[id] = m
	if a.InstanceID != nil {
		ks.statics[*a.InstanceID] = id
	}
	g.updateConsumerMember(m, a)
	g.bumpConsumerEpoch(now)
	return g.reconcile(m, a, now, c)
}

// updateConsumerMember applies the changeable fields of a heartbeat and
// reports whether the group's assignment must be recomputed.
func (g *group) updateConsumerMember(m *consumerMember, a ConsumerHeartbeatArgs) bool {
	changed := false
	if a.Subscribed != nil {
		subs := slices.Clone(a.Subscribed)
		slices.Sort(subs)
		subs = slices.Compact(subs)
		if !slices.Equal(subs, m.subscribed) {
			m.subscribed = subs
			changed = true
		}
	}
	if a.Regex != nil && *a.Regex != m.regexSrc {
		m.regexSrc, m.regex = *a.Regex, nil
		if *a.Regex != "" {
			m.regex, _ = compileSubscription(*a.Regex) // checked by validateConsumerHeartbeat
		}
		changed = true
	}
	if a.Assignor != nil && *a.Assignor != m.assignor {
		m.assignor = *a.Assignor
		changed = true
	}
	if a.RebalanceTimeout >= 0 {
		m.rebalanceTimeout = a.RebalanceTimeout
	}
	if a.RackID != nil {
		m.rackID = a.RackID
	}
	return changed
}

// ownedWithin reports whether the partitions a heartbeat says it owns are
// all in the member's current assignment (Kafka then accepts the member's
// previous epoch, for a heartbeat that crossed a response).
func (g *group) ownedWithin(a ConsumerHeartbeatArgs, m *consumerMember) bool {
	if !a.OwnedSet {
		return false
	}
	for _, t := range a.Owned {
		for _, p := range t.Partitions {
			if _, ok := m.current[tp{t.TopicID, p}]; !ok {
				return false
			}
		}
	}
	return true
}

func (g *group) bumpConsumerEpoch(now time.Time) {
	g.k.epoch++
	g.k.stateSince = now
}

// refreshTarget recomputes the target assignment when the group epoch
// moved past it, or when a subscribed topic's partitions changed.
func (g *group) refreshTarget(now time.Time, c *Coordinator) {
	ks := &g.k
	var names []string
	for _, m := range ks.members {
		if m.regex != nil {
			names = c.topics.TopicNames()
			break
		}
	}
	seen := make(map[string]TopicInfo)
	for _, m := range ks.members {
		m.effective = effectiveSubscription(m, names)
		for _, name := range m.effective {
			t, _ := c.topics.TopicByName(name)
			seen[name] = TopicInfo{Name: name, ID: t.ID, Partitions: t.Partitions}
		}
	}
	if ks.assignmentEpoch == ks.epoch && maps.Equal(seen, ks.topicsSeen) {
		return
	}
	ks.touchAll = true // every member's target may move
	if ks.assignmentEpoch == ks.epoch {
		g.bumpConsumerEpoch(now) // the topics changed under the group
	}
	ks.topicsSeen = seen
	ks.assignor = g.groupAssignor()
	ks.target = computeAssignment(ks.assignor, ks.members, ks.target, c.topics)
	ks.assignmentEpoch = ks.epoch
}

// groupAssignor is the assignor most members ask for (uniform on a tie).
func (g *group) groupAssignor() string {
	n := map[string]int{}
	for _, m := range g.k.members {
		n[m.assignor]++
	}
	if n["range"] > n["uniform"] {
		return "range"
	}
	return "uniform"
}

// reconcile moves m toward its target and builds its answer.
func (g *group) reconcile(m *consumerMember, a ConsumerHeartbeatArgs, now time.Time, c *Coordinator) ConsumerHeartbeatResult {
	ks := &g.k
	g.refreshTarget(now, c)
	if len(m.revoking) > 0 && a.OwnedSet {
		still := false
		for _, t := range a.Owned {
			for _, p := range t.Partitions {
				if _, ok := m.revoking[tp{t.TopicID, p}]; ok {
					still = true
				}
			}
		}
		if !still {
			m.revoking = assignment{}
			m.revokeDeadline = time.Time{}
		}
	}
	target := ks.target[m.id]
	if len(m.revoking) == 0 {
		// Step 1: give up what is no longer ours.
		revoke := assignment{}
		for p := range m.current {
			if _, ok := target[p]; !ok {
				revoke[p] = struct{}{}
			}
		}
		if len(revoke) > 0 {
			for p := range revoke {
				delete(m.current, p)
			}
			m.revoking = revoke
			m.revokeDeadline = now.Add(m.rebalanceTimeout)
		} else if m.epoch != ks.assignmentEpoch {
			m.previousEpoch, m.epoch = m.epoch, ks.assignmentEpoch
		}
	}
	if len(m.revoking) == 0 {
		// Step 2: take what is ours and free.
		owned := g.ownedByOthers(m.id)
		for p := range target {
			if _, busy := owned[p]; !busy {
				m.current[p] = struct{}{}
			}
		}
	}
	res := ConsumerHeartbeatResult{MemberID: m.id, Epoch: m.epoch}
	if m.sent == nil || !m.sent.equal(m.current) || (a.OwnedSet && !ownedEqual(a.Owned, m.current)) {
		m.sent = m.current.clone()
		res.Assignment = assignmentResponse(m.current)
	}
	return res
}

// ownedByOthers is every partition another member owns or is revoking.
func (g *group) ownedByOthers(self string) assignment {
	out := assignment{}
	for id, o := range g.k.members {
		if id == self {
			continue
		}
		for p := range o.current {
			out[p] = struct{}{}
		}
		for p := range o.revoking {
			out[p] = struct{}{}
		}
	}
	return out
}

func ownedEqual(owned []kmsg.ConsumerGroupHeartbeatRequestTopic, cur assignment) bool {
	n := 0
	for _, t := range owned {
		for _, p := range t.Partitions {
			if _, ok := cur[tp{t.TopicID, p}]; !ok {
				return false
			}
			n++
		}
	}
	return n == len(cur)
}

func assignmentResponse(a assignment) *kmsg.ConsumerGroupHeartbeatResponseAssignment {
	out := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
	out.Topics = []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{}
	byTopic := map[[16]byte][]int32{}
	var order [][16]byte
	for p := range a {
		if _, ok := byTopic[p.topic]; !ok {
			order = append(order, p.topic)
		}
		byTopic[p.topic] = append(byTopic[p.topic], p.partition)
	}
	slices.SortFunc(order, func(x, y [16]byte) int { return slices.Compare(x[:], y[:]) })
	for _, t := range order {
		ps := byTopic[t]
		slices.Sort(ps)
		rt := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
		rt.TopicID, rt.Partitions = t, ps
		out.Topics = append(out.Topics, rt)
	}
	return &out
}

// removeConsumerMember drops a member; its partitions become free.
func (g *group) removeConsumerMember(id string, now time.Time, c *Coordinator) {
	ks := &g.k
	m := ks.members[id]
	if m == nil {
		return
	}
	delete(ks.members, id)
	delete(ks.target, id)
	ks.touchConsumerMember(id)
	if m.instanceID != nil && ks.statics[*m.instanceID] == id {
		delete(ks.statics, *m.instanceID)
	}
	g.bumpConsumerEpoch(now)
	if len(ks.members) == 0 {
		g.c.stateSince = now // offsets expire from when the group became empty
	}
}

// consumerDeadline is the next time consumerTick has work; zero for never.
func (g *group) consumerDeadline() time.Time {
	var next time.Time
	for _, m := range g.k.members {
		for _, t := range []time.Time{m.sessionDeadline, m.revokeDeadline} {
			if !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
	}
	return next
}

// consumerTick removes members whose session or revocation time is up.
func (g *group) consumerTick(now time.Time, c *Coordinator) {
	for _, id := range sortedKeys(g.k.members) {
		m := g.k.members[id]
		if !now.Before(m.sessionDeadline) || (!m.revokeDeadline.IsZero() && !now.Before(m.revokeDeadline)) {
			g.removeConsumerMember(id, now, c)
		}
	}
}

// consumerStateName is the group state with Kafka's names.
func (g *group) consumerStateName() string {
	ks := &g.k
	switch {
	case len(ks.members) == 0:
		return "Empty"
	case ks.assignmentEpoch != ks.epoch:
		return "Assigning"
	}
	for _, m := range ks.members {
		if m.epoch != ks.assignmentEpoch || len(m.revoking) > 0 || !m.current.equal(ks.target[m.id]) {
			return "Reconciling"
		}
	}
	return "Stable"
}

// consumerMembers is the number of KIP-848 members.
func (g *group) consumerMembers() int { return len(g.k.members) }

// consumerSubscribedTopics is the union of the members' subscriptions.
func (g *group) consumerSubscribedTopics() map[string]bool {
	out := map[string]bool{}
	for _, m := range g.k.members {
		for _, t := range m.effective {
			out[t] = true
		}
	}
	return out
}

// checkConsumerCommitter checks an OffsetCommit against member epochs.
func (g *group) checkConsumerCommitter(a CommitArgs) *kerr.Error {
	ks := &g.k
	if len(ks.members) == 0 {
		if a.Generation >= 0 {
			return kerr.IllegalGeneration
		}
		return nil
	}
	m := ks.members[a.MemberID]
	if m == nil {
		return kerr.UnknownMemberID
	}
	if a.Generation != m.epoch {
		return kerr.StaleMemberEpoch
	}
	return nil
}

// ConsumerMemberDescription is a member in ConsumerGroupDescribe.
type ConsumerMemberDescription struct {
	MemberID   string
	InstanceID *string
	RackID     *string
	Epoch      int32
	ClientID   string
	ClientHost string
	Subscribed []string
	Current    kmsg.Assignment
	Target     kmsg.Assignment
}

// ConsumerGroupDescription is a ConsumerGroupDescribe entry.
type ConsumerGroupDescription struct {
	Err             *kerr.Error
	State           string
	Epoch           int32
	AssignmentEpoch int32
	Assignor        string
	Members         []ConsumerMemberDescription
}

func toAssignment(a assignment, topics Topics) kmsg.Assignment {
	out := kmsg.NewAssignment()
	out.TopicPartitions = []kmsg.AssignmentTopicPartition{}
	for _, t := range assignmentResponse(a).Topics {
		at := kmsg.NewAssignmentTopicPartition()
		at.TopicID, at.Partitions = t.TopicID, t.Partitions
		if info, ok := topics.TopicByID(t.TopicID); ok {
			at.Topic = info.Name
		}
		out.TopicPartitions = append(out.TopicPartitions, at)
	}
	return out
}

func (g *group) describeConsumer(topics Topics) ConsumerGroupDescription {
	ks := &g.k
	d := ConsumerGroupDescription{State: g.consumerStateName(), Epoch: ks.epoch, AssignmentEpoch: ks.assignmentEpoch, Assignor: ks.assignor}
	if d.Assignor == "" {
		d.Assignor = "uniform"
	}
	for _, id := range sortedKeys(ks.members) {
		m := ks.members[id]
		d.Members = append(d.Members, ConsumerMemberDescription{
			MemberID: m.id, InstanceID: m.instanceID, RackID: m.rackID, Epoch: m.epoch,
			ClientID: m.clientID, ClientHost: m.clientHost, Subscribed: m.subscribed,
			Current: toAssignment(m.current, topics), Target: toAssignment(ks.target[m.id], topics),
		})
	}
	return d
}

// compileSubscription compiles a subscription regex, which must match a
// whole topic name (as Kafka's RE2J matches()).
func compileSubscription(re string) (*regexp.Regexp, error) {
	return regexp.Compile("^(?:" + re + ")$")
}

// effectiveSubscription is what m subscribes to: its topic names plus
// those of names its regex matches, sorted.
func effectiveSubscription(m *consumerMember, names []string) []string {
	out := slices.Clone(m.subscribed)
	if m.regex == nil {
		return out
	}
	for _, n := range names {
		if m.regex.MatchString(n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
