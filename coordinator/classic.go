package coordinator

// The classic group protocol's state machine (JoinGroup, SyncGroup,
// Heartbeat, LeaveGroup and the timers between them), as Kafka's
// GroupCoordinator runs it:
//
//	Empty ──join──▶ PreparingRebalance ──all joined / timeout──▶ CompletingRebalance
//	  ▲                  ▲      │ (no member left: Empty)           │ leader's SyncGroup
//	  │                  │      ▼                                   ▼
//	  └── last member ───┴── member joins, leaves, expires, ◀──── Stable
//	      leaves               or changes its protocols
//
// Every method here runs with g.mu held and takes the time as now; none
// blocks. Requests that must wait (JoinGroup until the join phase ends,
// SyncGroup until the leader's assignment) get a channel that receives
// their result exactly once; the channel has room for it, so the state
// machine never waits for a reader.

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupState is a classic group's state, with Kafka's names.
type groupState int8

const (
	stateEmpty groupState = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	stateDead
)

func (s groupState) String() string {
	switch s {
	case stateEmpty:
		return "Empty"
	case statePreparingRebalance:
		return "PreparingRebalance"
	case stateCompletingRebalance:
		return "CompletingRebalance"
	case stateStable:
		return "Stable"
	default:
		return "Dead"
	}
}

// memberProtocol is one protocol a member supports, with its metadata.
type memberProtocol struct {
	name     string
	metadata []byte
}

// classicMember is a member of a classic group.
type classicMember struct {
	id               string
	instanceID       *string
	clientID         string
	clientHost       string
	protocolType     string
	protocols        []memberProtocol
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	assignment       []byte
	sessionDeadline  time.Time // expiry unless it heartbeats; ignored while waiting on join or sync
	// joinWait and syncWait are set while a JoinGroup or SyncGroup of the
	// member waits; each has capacity 1 and receives one result.
	joinWait chan JoinResult
	syncWait chan SyncResult
	// synced is set once the member's SyncGroup for the current generation
	// arrived (or, for the leader, when it handed out the assignment).
	synced bool
}

func (m *classicMember) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.name == protocol {
			return p.metadata
		}
	}
	return nil
}

// sameProtocols reports whether ps equals the member's protocols.
func (m *classicMember) sameProtocols(ps []memberProtocol) bool {
	return slices.EqualFunc(m.protocols, ps, func(a, b memberProtocol) bool {
		return a.name == b.name && string(a.metadata) == string(b.metadata)
	})
}

// JoinArgs is a JoinGroup request as the state machine needs it.
type JoinArgs struct {
	MemberID         string
	InstanceID       *string
	ClientID         string
	ClientHost       string
	ProtocolType     string
	Protocols        []kmsg.JoinGroupRequestProtocol
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	// RequireKnownMemberID is JoinGroup v4+: a member without an id gets
	// one back with MEMBER_ID_REQUIRED and must join again with it.
	RequireKnownMemberID bool
	// SupportsSkipAssignment is JoinGroup v9+.
	SupportsSkipAssignment bool
}

// JoinResult is what a JoinGroup gets back.
type JoinResult struct {
	Err            *kerr.Error
	MemberID       string
	Generation     int32
	ProtocolType   string
	Protocol       string
	Leader         string
	SkipAssignment bool
	Members        []kmsg.JoinGroupResponseMember // for the leader only
}

// SyncArgs is a SyncGroup request as the state machine needs it.
type SyncArgs struct {
	MemberID     string
	InstanceID   *string
	Generation   int32
	ProtocolType *string
	Protocol     *string
	Assignments  []kmsg.SyncGroupRequestGroupAssignment
}

// SyncResult is what a SyncGroup gets back.
type SyncResult struct {
	Err          *kerr.Error
	ProtocolType string
	Protocol     string
	Assignment   []byte
}

// pendingMember is a member id handed out with MEMBER_ID_REQUIRED and not
// yet used to join.
type pendingMember struct {
	deadline time.Time
}

// classicState is the classic-protocol part of a group.
type classicState struct {
	state        groupState
	stateSince   time.Time
	protocolType string
	protocol     string // selected protocol; "" before the first generation
	generation   int32
	leader       string
	members      map[string]*classicMember
	pending      map[string]pendingMember
	statics      map[string]string // instance id -> member id
	// joinDeadline ends the join phase (PreparingRebalance) at the latest;
	// initialDelayEnd, when set, is the earliest it may end (the initial
	// rebalance delay of a group that was empty).
	joinDeadline    time.Time
	initialDelayEnd time.Time
	// syncDeadline ends CompletingRebalance: members that have not synced
	// by then are removed and the group rebalances.
	syncDeadline time.Time
}

// limits are the broker configs a group checks.
type limits struct {
	minSession, maxSession time.Duration
	initialRebalanceDelay  time.Duration
	maxSize                int
}

func newClassicState(now time.Time) classicState {
	return classicState{
		state:      stateEmpty,
		stateSince: now,
		members:    make(map[string]*classicMember),
		pending:    make(map[string]pendingMember),
		statics:    make(map[string]string),
	}
}

func (g *group) transition(to groupState, now time.Time) {
	g.c.state = to
	g.c.stateSince = now
}

// join handles a JoinGroup. The result arrives on the returned channel,
// now or when the join phase ends.
func (g *group) join(a JoinArgs, now time.Time, lim limits) <-chan JoinResult {
	out := make(chan JoinResult, 1)
	fail := func(err *kerr.Error) <-chan JoinResult {
		out <- JoinResult{Err: err, MemberID: a.MemberID, Generation: -1}
		return out
	}
	cs := &g.c
	if a.SessionTimeout < lim.minSession || a.SessionTimeout > lim.maxSession {
		return fail(kerr.InvalidSessionTimeout)
	}
	if g.kind == kindConsumer && len(g.k.members) > 0 {
		return fail(kerr.InconsistentGroupProtocol) // a KIP-848 group with members
	}
	if cs.state == stateDead {
		return fail(kerr.CoordinatorNotAvailable)
	}
	protocols := make([]memberProtocol, 0, len(a.Protocols))
	for _, p := range a.Protocols {
		protocols = append(protocols, memberProtocol{name: p.Name, metadata: slices.Clone(p.Metadata)})
	}
	if a.ProtocolType == "" || len(protocols) == 0 || !g.supports(a.ProtocolType, protocols) {
		return fail(kerr.InconsistentGroupProtocol)
	}

	if a.MemberID == "" {
		if a.InstanceID != nil {
			if old, ok := cs.statics[*a.InstanceID]; ok {
				return g.rejoinStatic(a, old, protocols, now, lim, out)
			}
		}
		if lim.maxSize > 0 && len(cs.members)+len(cs.pending) >= lim.maxSize {
			return fail(kerr.GroupMaxSizeReached)
		}
		id := newMemberID(a.ClientID)
		if a.RequireKnownMemberID && a.InstanceID == nil {
			cs.pending[id] = pendingMember{deadline: now.Add(a.SessionTimeout)}
			out <- JoinResult{Err: kerr.MemberIDRequired, MemberID: id, Generation: -1}
			return out
		}
		a.MemberID = id
		g.addMember(a, protocols, now, out, lim)
		return out
	}

	if _, ok := cs.pending[a.MemberID]; ok {
		delete(cs.pending, a.MemberID)
		if lim.maxSize > 0 && len(cs.members) >= lim.maxSize {
			return fail(kerr.GroupMaxSizeReached)
		}
		g.addMember(a, protocols, now, out, lim)
		return out
	}
	// As Kafka's validateExistingMember: a member id replaced by a newer
	// incarnation of its static instance is FENCED_INSTANCE_ID (it must
	// stop), not UNKNOWN_MEMBER_ID (which would have it rejoin and take
	// the instance back).
	m, err := g.validateMember(a.MemberID, a.InstanceID)
	if err != nil {
		return fail(err)
	}
	m.clientID, m.clientHost = a.ClientID, a.ClientHost
	m.sessionTimeout, m.rebalanceTimeout = a.SessionTimeout, a.RebalanceTimeout
	switch cs.state {
	case statePreparingRebalance:
		m.protocols = protocols
		g.awaitJoin(m, out)
		g.maybeCompleteJoin(now, lim)
	case stateCompletingRebalance:
		if m.sameProtocols(protocols) {
			// A retried JoinGroup of this generation: answer it again.
			out <- g.joinResponse(m, a.SupportsSkipAssignment)
			return out
		}
		m.protocols = protocols
		g.awaitJoin(m, out)
		g.prepareRebalance(now, lim)
	case stateStable:
		if m.id == cs.leader || !m.sameProtocols(protocols) {
			m.protocols = protocols
			g.awaitJoin(m, out)
			g.prepareRebalance(now, lim)
			return out
		}
		m.sessionDeadline = now.Add(m.sessionTimeout)
		out <- g.joinResponse(m, a.SupportsSkipAssignment)
	default: // Empty with a known member cannot happen; treat as unknown
		return fail(kerr.UnknownMemberID)
	}
	return out
}

// supports reports whether a member with these protocols may join: the
// same protocol type, and a protocol every current member supports.
func (g *group) supports(protocolType string, ps []memberProtocol) bool {
	cs := &g.c
	if len(cs.members) == 0 {
		return true
	}
	if protocolType != cs.protocolType {
		return false
	}
	for _, p := range ps {
		all := true
		for _, m := range cs.members {
			if !slices.ContainsFunc(m.protocols, func(x memberProtocol) bool { return x.name == p.name }) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// validateMember identifies the member a request comes from, as Kafka's
// ClassicGroup.validateMember does: with an instance id, the instance must
// be known (UNKNOWN_MEMBER_ID) and be this member id now
// (FENCED_INSTANCE_ID: an older incarnation of a static member); without
// one, the member id must be known. A static member's requests may omit
// the instance id.
func (g *group) validateMember(memberID string, instanceID *string) (*classicMember, *kerr.Error) {
	cs := &g.c
	if instanceID != nil {
		id, ok := cs.statics[*instanceID]
		if !ok {
			return nil, kerr.UnknownMemberID
		}
		if id != memberID {
			return nil, kerr.FencedInstanceID
		}
	}
	m, ok := cs.members[memberID]
	if !ok {
		return nil, kerr.UnknownMemberID
	}
	return m, nil
}

func (g *group) addMember(a JoinArgs, protocols []memberProtocol, now time.Time, out chan JoinResult, lim limits) {
	cs := &g.c
	m := &classicMember{
		id:               a.MemberID,
		instanceID:       a.InstanceID,
		clientID:         a.ClientID,
		clientHost:       a.ClientHost,
		protocolType:     a.ProtocolType,
		protocols:        protocols,
		sessionTimeout:   a.SessionTimeout,
		rebalanceTimeout: a.RebalanceTimeout,
		sessionDeadline:  now.Add(a.SessionTimeout),
	}
	if len(cs.members) == 0 {
		cs.protocolType = a.ProtocolType
	}
	cs.members[m.id] = m
	if m.instanceID != nil {
		cs.statics[*m.instanceID] = m.id
	}
	g.kind = kindClassic
	g.awaitJoin(m, out)
	switch cs.state {
	case statePreparingRebalance:
		if !cs.initialDelayEnd.IsZero() {
			// A new member extends the initial delay, up to the rebalance timeout.
			cs.initialDelayEnd = minTime(now.Add(lim.initialRebalanceDelay), cs.joinDeadline)
		}
		g.maybeCompleteJoin(now, lim)
	default:
		g.prepareRebalance(now, lim)
	}
}

// rejoinStatic handles a JoinGroup without a member id from a known group
// instance id: the old member id is replaced (fencing the old one).
func (g *group) rejoinStatic(a JoinArgs, oldID string, protocols []memberProtocol, now time.Time, lim limits, out chan JoinResult) <-chan JoinResult {
	cs := &g.c
	old := cs.members[oldID]
	newID := newMemberID(a.ClientID)
	m := &classicMember{
		id:               newID,
		instanceID:       a.InstanceID,
		clientID:         a.ClientID,
		clientHost:       a.ClientHost,
		protocolType:     a.ProtocolType,
		protocols:        protocols,
		sessionTimeout:   a.SessionTimeout,
		rebalanceTimeout: a.RebalanceTimeout,
		sessionDeadline:  now.Add(a.SessionTimeout),
	}
	if old != nil {
		m.assignment = old.assignment
		m.synced = old.synced
		if old.joinWait != nil {
			old.joinWait <- JoinResult{Err: kerr.FencedInstanceID, MemberID: old.id, Generation: -1}
			old.joinWait = nil
		}
		if old.syncWait != nil {
			old.syncWait <- SyncResult{Err: kerr.FencedInstanceID}
			old.syncWait = nil
		}
		delete(cs.members, oldID)
	}
	cs.members[newID] = m
	cs.statics[*a.InstanceID] = newID
	wasLeader := cs.leader == oldID
	if wasLeader {
		cs.leader = newID
	}
	if cs.state == stateStable && old != nil && g.selectProtocol() == cs.protocol && (!wasLeader || a.SupportsSkipAssignment) {
		// KIP-345: the same static member is back; as in Kafka, it
		// rebalances only when the group's protocol would change (its
		// metadata may differ: a restarted consumer owns nothing yet and
		// has no generation). A leader that cannot be told to skip the
		// assignment (JoinGroup < v9) rebalances, so that it learns the
		// members. The new member id is stored, as Kafka does.
		g.dirty = true
		res := g.joinResponse(m, a.SupportsSkipAssignment)
		if wasLeader {
			res.SkipAssignment = true
		}
		out <- res
		return out
	}
	g.awaitJoin(m, out)
	switch cs.state {
	case statePreparingRebalance:
		g.maybeCompleteJoin(now, lim)
	default:
		g.prepareRebalance(now, lim)
	}
	return out
}

// abandonWaitersLocked answers every JoinGroup and SyncGroup waiting in
// the group with err (the group is going away from this coordinator).
func (g *group) abandonWaitersLocked(err *kerr.Error) {
	for _, m := range g.c.members {
		if m.joinWait != nil {
			m.joinWait <- JoinResult{Err: err, MemberID: m.id, Generation: -1}
			m.joinWait = nil
		}
		if m.syncWait != nil {
			m.syncWait <- SyncResult{Err: err}
			m.syncWait = nil
		}
	}
}

func (g *group) awaitJoin(m *classicMember, out chan JoinResult) {
	if m.joinWait != nil {
		// A second JoinGroup while one waits: the first is superseded.
		m.joinWait <- JoinResult{Err: kerr.RebalanceInProgress, MemberID: m.id, Generation: -1}
	}
	m.joinWait = out
}

// joinResponse is the JoinGroup answer for m in the current generation.
func (g *group) joinResponse(m *classicMember, supportsSkip bool) JoinResult {
	cs := &g.c
	res := JoinResult{
		MemberID:     m.id,
		Generation:   cs.generation,
		ProtocolType: cs.protocolType,
		Protocol:     cs.protocol,
		Leader:       cs.leader,
	}
	if m.id == cs.leader {
		for _, id := range g.memberOrder() {
			o := cs.members[id]
			jm := kmsg.NewJoinGroupResponseMember()
			jm.MemberID = o.id
			jm.InstanceID = o.instanceID
			jm.ProtocolMetadata = o.metadataFor(cs.protocol)
			res.Members = append(res.Members, jm)
		}
	}
	return res
}

// memberOrder returns member ids in a stable order.
func (g *group) memberOrder() []string {
	ids := make([]string, 0, len(g.c.members))
	for id := range g.c.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// prepareRebalance starts a join phase: members learn of it from their
// next heartbeat (REBALANCE_IN_PROGRESS) and rejoin.
func (g *group) prepareRebalance(now time.Time, lim limits) {
	cs := &g.c
	wasEmpty := cs.state == stateEmpty
	if cs.state == stateCompletingRebalance {
		// Members waiting for an assignment of the abandoned generation.
		for _, m := range cs.members {
			if m.syncWait != nil {
				m.syncWait <- SyncResult{Err: kerr.RebalanceInProgress}
				m.syncWait = nil
			}
		}
	}
	g.transition(statePreparingRebalance, now)
	cs.joinDeadline = now.Add(g.maxRebalanceTimeout())
	cs.initialDelayEnd = time.Time{}
	if wasEmpty && lim.initialRebalanceDelay > 0 {
		cs.initialDelayEnd = minTime(now.Add(lim.initialRebalanceDelay), cs.joinDeadline)
	}
	g.maybeCompleteJoin(now, lim)
}

func (g *group) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.c.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

// maybeCompleteJoin ends the join phase when every member has rejoined
// and no handed-out member id is outstanding (and any initial delay is
// over), or when the join deadline has passed.
func (g *group) maybeCompleteJoin(now time.Time, lim limits) {
	cs := &g.c
	if cs.state != statePreparingRebalance {
		return
	}
	all := len(cs.pending) == 0
	for _, m := range cs.members {
		if m.joinWait == nil {
			all = false
			break
		}
	}
	delayOver := cs.initialDelayEnd.IsZero() || !now.Before(cs.initialDelayEnd)
	if (all && delayOver) || !now.Before(cs.joinDeadline) {
		g.completeJoin(now)
	}
}

// completeJoin starts the next generation with the members that rejoined.
func (g *group) completeJoin(now time.Time) {
	cs := &g.c
	for id, m := range cs.members {
		if m.joinWait == nil && m.instanceID == nil {
			g.removeMemberLocked(id)
		}
	}
	cs.initialDelayEnd = time.Time{}
	cs.generation++
	if len(cs.members) == 0 {
		cs.protocol, cs.leader = "", ""
		g.transition(stateEmpty, now)
		g.dirty = true
		return
	}
	cs.protocol = g.selectProtocol()
	if _, ok := cs.members[cs.leader]; !ok {
		cs.leader = g.memberOrder()[0]
		// Prefer a member that rejoined as leader: it must answer SyncGroup.
		for _, id := range g.memberOrder() {
			if cs.members[id].joinWait != nil {
				cs.leader = id
				break
			}
		}
	}
	g.transition(stateCompletingRebalance, now)
	cs.syncDeadline = now.Add(g.maxRebalanceTimeout())
	for _, m := range cs.members {
		m.synced = false
		m.assignment = nil
		m.sessionDeadline = now.Add(m.sessionTimeout)
		if m.joinWait != nil {
			m.joinWait <- g.joinResponse(m, false)
			m.joinWait = nil
		}
	}
}

// selectProtocol picks the protocol every member supports that most
// members list first among those (ties go to the leader's preference).
func (g *group) selectProtocol() string {
	cs := &g.c
	var candidates []string
	ids := g.memberOrder()
	first := cs.members[ids[0]]
	if l, ok := cs.members[cs.leader]; ok {
		first = l
	}
	for _, p := range first.protocols {
		all := true
		for _, m := range cs.members {
			if !slices.ContainsFunc(m.protocols, func(x memberProtocol) bool { return x.name == p.name }) {
				all = false
				break
			}
		}
		if all {
			candidates = append(candidates, p.name)
		}
	}
	votes := make(map[string]int)
	for _, m := range cs.members {
		for _, p := range m.protocols {
			if slices.Contains(candidates, p.name) {
				votes[p.name]++
				break
			}
		}
	}
	best := ""
	for _, c := range candidates {
		if best == "" || votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

// sync handles a SyncGroup.
func (g *group) sync(a SyncArgs, now time.Time, lim limits) <-chan SyncResult {
	out := make(chan SyncResult, 1)
	cs := &g.c
	fail := func(err *kerr.Error) <-chan SyncResult {
		out <- SyncResult{Err: err}
		return out
	}
	if cs.state == stateDead || cs.state == stateEmpty {
		return fail(kerr.UnknownMemberID)
	}
	m, err := g.validateMember(a.MemberID, a.InstanceID)
	if err != nil {
		return fail(err)
	}
	if a.Generation != cs.generation {
		return fail(kerr.IllegalGeneration)
	}
	if (a.ProtocolType != nil && *a.ProtocolType != cs.protocolType) || (a.Protocol != nil && *a.Protocol != cs.protocol) {
		return fail(kerr.InconsistentGroupProtocol)
	}
	m.sessionDeadline = now.Add(m.sessionTimeout)
	switch cs.state {
	case statePreparingRebalance:
		return fail(kerr.RebalanceInProgress)
	case stateStable:
		out <- SyncResult{ProtocolType: cs.protocolType, Protocol: cs.protocol, Assignment: m.assignment}
		m.synced = true
		return out
	}
	// CompletingRebalance.
	if m.syncWait != nil {
		m.syncWait <- SyncResult{Err: kerr.RebalanceInProgress}
	}
	m.syncWait = out
	m.synced = true
	if m.id != cs.leader {
		return out
	}
	for _, as := range a.Assignments {
		if o, ok := cs.members[as.MemberID]; ok {
			o.assignment = slices.Clone(as.MemberAssignment)
		}
	}
	g.transition(stateStable, now)
	g.dirty = true
	for _, o := range cs.members {
		if o.syncWait != nil {
			o.syncWait <- SyncResult{ProtocolType: cs.protocolType, Protocol: cs.protocol, Assignment: o.assignment}
			o.syncWait = nil
		}
	}
	return out
}

// heartbeat handles a Heartbeat and returns its error (nil for none).
func (g *group) heartbeat(memberID string, instanceID *string, generation int32, now time.Time) *kerr.Error {
	cs := &g.c
	if cs.state == stateDead || cs.state == stateEmpty {
		return kerr.UnknownMemberID
	}
	m, err := g.validateMember(memberID, instanceID)
	if err != nil {
		return err
	}
	if generation != cs.generation {
		return kerr.IllegalGeneration
	}
	m.sessionDeadline = now.Add(m.sessionTimeout)
	if cs.state == statePreparingRebalance {
		return kerr.RebalanceInProgress
	}
	return nil
}

// leave removes members (LeaveGroup). For each identity it returns the
// member's error (nil when it left).
func (g *group) leave(memberID string, instanceID *string, now time.Time, lim limits) *kerr.Error {
	cs := &g.c
	if instanceID != nil {
		id, ok := cs.statics[*instanceID]
		if !ok {
			return kerr.UnknownMemberID
		}
		if memberID != "" && memberID != id {
			return kerr.FencedInstanceID
		}
		memberID = id
	}
	if _, ok := cs.pending[memberID]; ok {
		delete(cs.pending, memberID)
		g.maybeCompleteJoin(now, lim)
		return nil
	}
	if _, ok := cs.members[memberID]; !ok {
		return kerr.UnknownMemberID
	}
	g.removeMember(memberID, now, lim)
	return nil
}

// removeMember removes a member and rebalances what is left.
func (g *group) removeMember(id string, now time.Time, lim limits) {
	g.removeMemberLocked(id)
	cs := &g.c
	switch cs.state {
	case stateStable, stateCompletingRebalance:
		if len(cs.members) == 0 {
			cs.generation++
			cs.protocol, cs.leader = "", ""
			g.transition(stateEmpty, now)
			g.dirty = true
			return
		}
		g.prepareRebalance(now, lim)
	case statePreparingRebalance:
		g.maybeCompleteJoin(now, lim)
	}
}

// removeMemberLocked drops a member, answering its waiting requests.
func (g *group) removeMemberLocked(id string) {
	cs := &g.c
	m := cs.members[id]
	if m == nil {
		return
	}
	if m.joinWait != nil {
		m.joinWait <- JoinResult{Err: kerr.UnknownMemberID, MemberID: id, Generation: -1}
	}
	if m.syncWait != nil {
		m.syncWait <- SyncResult{Err: kerr.UnknownMemberID}
	}
	delete(cs.members, id)
	if m.instanceID != nil && cs.statics[*m.instanceID] == id {
		delete(cs.statics, *m.instanceID)
	}
	if cs.leader == id {
		cs.leader = ""
		for _, oid := range g.memberOrder() {
			cs.leader = oid
			break
		}
	}
}

// tick runs the timers due at now: expired sessions and handed-out member
// ids, the end of the join phase, and the sync deadline.
func (g *group) tick(now time.Time, lim limits) {
	cs := &g.c
	for id, p := range cs.pending {
		if !now.Before(p.deadline) {
			delete(cs.pending, id)
		}
	}
	for _, id := range g.memberOrder() {
		m := cs.members[id]
		if m == nil || m.joinWait != nil || m.syncWait != nil {
			continue // waiting members are kept alive by their request
		}
		if !now.Before(m.sessionDeadline) {
			g.removeMember(id, now, lim)
		}
	}
	switch cs.state {
	case statePreparingRebalance:
		g.maybeCompleteJoin(now, lim)
	case stateCompletingRebalance:
		if !now.Before(cs.syncDeadline) {
			var late []string
			for _, id := range g.memberOrder() {
				if !cs.members[id].synced {
					late = append(late, id)
				}
			}
			for _, id := range late {
				g.removeMemberLocked(id)
			}
			if len(cs.members) == 0 {
				cs.generation++
				cs.protocol, cs.leader = "", ""
				g.transition(stateEmpty, now)
				g.dirty = true
			} else {
				g.prepareRebalance(now, lim)
			}
		}
	}
}

// nextDeadline is when tick next has something to do; zero for never.
func (g *group) classicDeadline() time.Time {
	cs := &g.c
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, p := range cs.pending {
		consider(p.deadline)
	}
	for _, m := range cs.members {
		if m.joinWait == nil && m.syncWait == nil {
			consider(m.sessionDeadline)
		}
	}
	switch cs.state {
	case statePreparingRebalance:
		consider(cs.joinDeadline)
		consider(cs.initialDelayEnd)
	case stateCompletingRebalance:
		consider(cs.syncDeadline)
	}
	return next
}

// metadataValue is the group's GroupMetadataValue for __consumer_offsets.
func (g *group) metadataValue() *kmsg.GroupMetadataValue {
	cs := &g.c
	v := kmsg.NewGroupMetadataValue()
	v.ProtocolType = cs.protocolType
	v.Generation = cs.generation
	if cs.protocol != "" {
		v.Protocol = kmsg.StringPtr(cs.protocol)
	}
	if cs.leader != "" {
		v.Leader = kmsg.StringPtr(cs.leader)
	}
	v.CurrentStateTimestamp = cs.stateSince.UnixMilli()
	for _, id := range g.memberOrder() {
		m := cs.members[id]
		vm := kmsg.NewGroupMetadataValueMember()
		vm.MemberID = m.id
		vm.InstanceID = m.instanceID
		vm.ClientID = m.clientID
		vm.ClientHost = m.clientHost
		vm.RebalanceTimeoutMillis = int32(m.rebalanceTimeout / time.Millisecond)
		vm.SessionTimeoutMillis = int32(m.sessionTimeout / time.Millisecond)
		vm.Subscription = m.metadataFor(cs.protocol)
		vm.Assignment = m.assignment
		v.Members = append(v.Members, vm)
	}
	return &v
}

// restoreClassic rebuilds a classic group from its stored metadata: a
// group with members comes back Stable, each member with a fresh session.
func (g *group) restoreClassic(v *kmsg.GroupMetadataValue, now time.Time) {
	cs := &g.c
	*cs = newClassicState(now)
	cs.protocolType = v.ProtocolType
	cs.generation = v.Generation
	if v.Protocol != nil {
		cs.protocol = *v.Protocol
	}
	if v.Leader != nil {
		cs.leader = *v.Leader
	}
	if v.CurrentStateTimestamp > 0 {
		cs.stateSince = time.UnixMilli(v.CurrentStateTimestamp)
	}
	for _, vm := range v.Members {
		m := &classicMember{
			id:               vm.MemberID,
			instanceID:       vm.InstanceID,
			clientID:         vm.ClientID,
			clientHost:       vm.ClientHost,
			protocolType:     v.ProtocolType,
			protocols:        []memberProtocol{{name: cs.protocol, metadata: vm.Subscription}},
			sessionTimeout:   time.Duration(vm.SessionTimeoutMillis) * time.Millisecond,
			rebalanceTimeout: time.Duration(max(vm.RebalanceTimeoutMillis, vm.SessionTimeoutMillis)) * time.Millisecond,
			assignment:       vm.Assignment,
			synced:           true,
		}
		m.sessionDeadline = now.Add(m.sessionTimeout)
		cs.members[m.id] = m
		if m.instanceID != nil {
			cs.statics[*m.instanceID] = m.id
		}
	}
	g.kind = kindClassic
	if len(cs.members) > 0 {
		cs.state = stateStable
	}
}

// subscribedTopics returns the topics the members of a "consumer" group
// subscribe to, from their protocol metadata.
func (g *group) subscribedTopics() map[string]bool {
	cs := &g.c
	out := make(map[string]bool)
	if cs.protocolType != "consumer" {
		return out
	}
	for _, m := range cs.members {
		meta := m.metadataFor(cs.protocol)
		if meta == nil && len(m.protocols) > 0 {
			meta = m.protocols[0].metadata
		}
		var cm kmsg.ConsumerMemberMetadata
		if err := cm.ReadFrom(meta); err != nil {
			continue
		}
		for _, t := range cm.Topics {
			out[t] = true
		}
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
