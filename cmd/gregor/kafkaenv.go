package main

// The environment of Kafka's container images, so that a docker-compose
// file or a testcontainers set-up written for apache/kafka (or Bitnami's
// image) runs Gregor by changing its image line.
//
// apache/kafka turns every KAFKA_* variable into a server property: the
// prefix is dropped, the rest lower-cased, and runs of underscores read as
// "___" -> "-", "__" -> "_", "_" -> "." (KAFKA_LOG_RETENTION_MS is
// log.retention.ms). Bitnami's image reads KAFKA_CFG_* the same way (it
// has no "__" or "___" forms, which leaves its names unchanged). CLUSTER_ID
// (Bitnami: KAFKA_KRAFT_CLUSTER_ID) is the cluster id.
//
// The Kafka environment is read only when GREGOR_KAFKA_ENV=1, which the
// image's Dockerfile sets: outside the container a CLUSTER_ID or KAFKA_*
// variable left in a shell means nothing to `gregor serve`.
//
// Precedence, strongest first: command-line flags and GREGOR_* variables,
// then KAFKA_*, then KAFKA_CFG_*, then Gregor's defaults.
//
// The settings Gregor has flags for become those flags: node.id (or
// broker.id), listeners, advertised.listeners (listeners derived from it
// when unset, every host made 0.0.0.0, as apache/kafka does),
// inter.broker.listener.name (that listener is put first: brokers reach
// each other through the first), log.dirs (or log.dir), broker.rack and
// CLUSTER_ID. Boolean configs are lower-cased first: Kafka reads them
// case-insensitively.
// listener.security.protocol.map is checked: Gregor serves PLAINTEXT only.
// When GREGOR_* listener settings win, the Kafka ones are neither used
// nor checked.
// Every other broker or topic-default config Gregor knows passes through
// as if given with --config. controller.quorum.voters naming several
// nodes makes them the members of the embedded etcd cluster (peers at the
// voters' controller addresses), so that Kafka's three-node compose files
// form one Gregor cluster; voters sharing a host, and several
// controller.quorum.bootstrap.servers with no voters and no GREGOR_ETCD_*
// settings, fail the start. process.roles without "broker" (KRaft's
// isolated mode) fails it too. Other KRaft-only and ZooKeeper settings, and
// the controller listeners that controller.listener.names names, are
// accepted and ignored, with one log line; the rest is unknown and warned
// about.

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/gregorbroker/gregor/broker"
)

// kafkaEnv is what a Kafka container environment asks of the broker.
type kafkaEnv struct {
	// flags are serve flag values by flag name, applied where neither a
	// flag nor a GREGOR_* variable is set.
	flags map[string]string
	// listenerSource names the variables the listener flags came from,
	// for the message when GREGOR_* listener settings win.
	listenerSource string
	// configs are broker configs by Kafka name, weaker than --config and
	// the config flags.
	configs map[string]string
	// ignored are the variables read and ignored (KRaft, ZooKeeper, and
	// Kafka settings that mean nothing to Gregor) and the controller
	// listeners left out, sorted.
	ignored []string
	// unknown are the variables naming no config Gregor knows, sorted.
	unknown []string
	// warnings are settings Gregor follows only in part.
	warnings []string
	// voters are controller.quorum.voters when it names several nodes:
	// they become the members of the embedded etcd cluster.
	voters []quorumVoter
	// votersSet says controller.quorum.voters is set, with any number of
	// voters.
	votersSet bool
	// bootstrap is controller.quorum.bootstrap.servers when it names
	// several nodes (bootstrapCount): without voters or GREGOR_ETCD_*
	// settings Gregor cannot tell the etcd members from it.
	bootstrap      kafkaSetting
	bootstrapCount int
}

// quorumVoter is one entry of controller.quorum.voters, id@host:port.
type quorumVoter struct {
	id   int
	host string
	port string
}

// kafkaImageVars are KAFKA_* variables of the images that are not broker
// configs (JVM, logging and image options): they mean nothing to Gregor
// and are skipped without a word.
var kafkaImageVars = map[string]bool{
	"KAFKA_VERSION": true, "KAFKA_HOME": true, "KAFKA_HEAP_OPTS": true, "KAFKA_OPTS": true,
	"KAFKA_JVM_PERFORMANCE_OPTS": true, "KAFKA_GC_LOG_OPTS": true, "KAFKA_JMX_OPTS": true,
	"KAFKA_JMX_PORT": true, "KAFKA_JMX_HOSTNAME": true, "KAFKA_DEBUG": true,
	"KAFKA_LOG4J_OPTS": true, "KAFKA_LOG4J_ROOT_LOGLEVEL": true, "KAFKA_LOG4J_LOGGERS": true,
	"KAFKA_TOOLS_LOG4J_LOGLEVEL": true,
	// Bitnami's image options.
	"KAFKA_ENABLE_KRAFT": true, "KAFKA_KRAFT_CLUSTER_ID": true,
}

// ignoredKafkaConfig reports whether a Kafka config is one Gregor accepts
// and ignores: KRaft's (Gregor's metadata is in etcd, every broker is a
// controller candidate), ZooKeeper's, and tuning that has no counterpart.
func ignoredKafkaConfig(name string) bool {
	switch name {
	case "process.roles", "zookeeper.connect", "zookeeper.connection.timeout.ms", "zookeeper.session.timeout.ms",
		"num.network.threads", "num.io.threads", "num.recovery.threads.per.data.dir", "num.replica.fetchers",
		"socket.send.buffer.bytes", "socket.receive.buffer.bytes", "background.threads",
		"group.coordinator.rebalance.protocols", "metadata.log.dir", "log.dir.failure.timeout.ms":
		return true
	}
	return strings.HasPrefix(name, "controller.") || strings.HasPrefix(name, "metadata.log.") ||
		strings.HasPrefix(name, "share.coordinator.") || strings.HasPrefix(name, "confluent.")
}

// kafkaConfigName turns the part of a variable after KAFKA_ into a config
// name by apache/kafka's rule.
func kafkaConfigName(s string) string {
	var b strings.Builder
	s = strings.ToLower(s)
	for i := 0; i < len(s); {
		if s[i] != '_' {
			b.WriteByte(s[i])
			i++
			continue
		}
		n := 0
		for i < len(s) && s[i] == '_' {
			n++
			i++
		}
		b.WriteString(strings.Repeat("-", n/3))
		switch n % 3 {
		case 1:
			b.WriteByte('.')
		case 2:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// kafkaSetting is one config read from the environment.
type kafkaSetting struct {
	value    string
	variable string
}

// readKafkaEnv reads environ (os.Environ's form). known tells broker
// configs Gregor knows from others. listeners says whether the Kafka
// listener settings are applied: when GREGOR_* listener settings win they
// are only named in listenerSource, neither checked nor used.
func readKafkaEnv(environ []string, known func(string) bool, listeners bool) (kafkaEnv, error) {
	ke := kafkaEnv{flags: map[string]string{}, configs: map[string]string{}}
	props := map[string]kafkaSetting{}
	cfgForm := map[string]kafkaSetting{} // KAFKA_CFG_*, weaker
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || value == "" {
			continue
		}
		switch {
		case name == "CLUSTER_ID" || name == "KAFKA_KRAFT_CLUSTER_ID":
			if _, set := ke.flags["cluster-id"]; !set || name == "CLUSTER_ID" {
				ke.flags["cluster-id"] = strings.TrimSpace(value)
			}
		case strings.HasPrefix(name, "KAFKA_CFG_"):
			cfgForm[kafkaConfigName(name[len("KAFKA_CFG_"):])] = kafkaSetting{value, name}
		case strings.HasPrefix(name, "KAFKA_") && !kafkaImageVars[name]:
			props[kafkaConfigName(name[len("KAFKA_"):])] = kafkaSetting{value, name}
		}
	}
	for k, v := range cfgForm {
		if _, ok := props[k]; !ok {
			props[k] = v
		}
	}
	take := func(name string) (kafkaSetting, bool) {
		s, ok := props[name]
		delete(props, name)
		return s, ok
	}

	if s, ok := take("process.roles"); ok {
		roles := strings.Split(strings.ToLower(strings.ReplaceAll(s.value, " ", "")), ",")
		if !slices.Contains(roles, "broker") {
			return kafkaEnv{}, fmt.Errorf("%s=%s: Gregor has no controller-only nodes (KRaft's isolated mode): every Gregor broker is a controller candidate, run brokers only",
				s.variable, s.value)
		}
		ke.ignored = append(ke.ignored, s.variable)
	}
	if s, ok := take("node.id"); ok {
		ke.flags["node-id"] = strings.TrimSpace(s.value)
		take("broker.id")
	} else if s, ok := take("broker.id"); ok {
		ke.flags["node-id"] = strings.TrimSpace(s.value)
	}
	if s, ok := take("broker.rack"); ok {
		ke.flags["rack"] = strings.TrimSpace(s.value)
	}
	if s, ok := take("log.dirs"); ok {
		ke.setDataDir(s)
		take("log.dir")
	} else if s, ok := take("log.dir"); ok {
		ke.setDataDir(s)
	}
	if listeners {
		if err := ke.readListeners(take); err != nil {
			return kafkaEnv{}, err
		}
	} else {
		ke.skipListeners(take)
	}
	if s, ok := take("controller.quorum.voters"); ok {
		ke.votersSet = true
		if err := ke.readVoters(s); err != nil {
			return kafkaEnv{}, err
		}
	}
	if s, ok := take("controller.quorum.bootstrap.servers"); ok {
		n := 0
		for entry := range strings.SplitSeq(s.value, ",") {
			if strings.TrimSpace(entry) != "" {
				n++
			}
		}
		if n > 1 {
			ke.bootstrap, ke.bootstrapCount = s, n
		} else {
			ke.ignored = append(ke.ignored, s.variable)
		}
	}

	for name, s := range props {
		switch {
		case known(name):
			v := strings.TrimSpace(s.value)
			if broker.IsBooleanBrokerConfig(name) {
				// Kafka reads booleans case-insensitively: TRUE is true.
				v = strings.ToLower(v)
			}
			ke.configs[name] = v
		case ignoredKafkaConfig(name):
			ke.ignored = append(ke.ignored, s.variable)
		default:
			ke.unknown = append(ke.unknown, s.variable)
		}
	}
	slices.Sort(ke.ignored)
	slices.Sort(ke.unknown)
	return ke, nil
}

// setDataDir takes the first of log.dirs: Gregor has one data directory.
func (ke *kafkaEnv) setDataDir(s kafkaSetting) {
	dirs := strings.Split(s.value, ",")
	ke.flags["data-dir"] = strings.TrimSpace(dirs[0])
	if len(dirs) > 1 {
		ke.warnings = append(ke.warnings, fmt.Sprintf("%s names %d directories; Gregor uses one, the first: %s",
			s.variable, len(dirs), ke.flags["data-dir"]))
	}
}

// listenerSettings are the Kafka configs about listeners.
var listenerSettings = []string{"listeners", "advertised.listeners", "controller.listener.names",
	"inter.broker.listener.name", "listener.security.protocol.map", "security.inter.broker.protocol"}

// skipListeners takes the listener settings without reading them, naming
// those set in listenerSource.
func (ke *kafkaEnv) skipListeners(take func(string) (kafkaSetting, bool)) {
	var names []string
	for _, name := range listenerSettings {
		if s, ok := take(name); ok {
			names = append(names, s.variable)
		}
	}
	slices.Sort(names)
	ke.listenerSource = strings.Join(names, ", ")
}

// readListeners reads listeners, advertised.listeners,
// controller.listener.names, inter.broker.listener.name,
// listener.security.protocol.map and security.inter.broker.protocol.
func (ke *kafkaEnv) readListeners(take func(string) (kafkaSetting, bool)) error {
	controllers := map[string]bool{}
	if s, ok := take("controller.listener.names"); ok {
		ke.ignored = append(ke.ignored, s.variable)
		for n := range strings.SplitSeq(s.value, ",") {
			if n = strings.ToUpper(strings.TrimSpace(n)); n != "" {
				controllers[n] = true
			}
		}
	}
	ls, haveLs := take("listeners")
	adv, haveAdv := take("advertised.listeners")
	if !haveLs && !haveAdv {
		for _, name := range []string{"inter.broker.listener.name", "listener.security.protocol.map", "security.inter.broker.protocol"} {
			if s, ok := take(name); ok {
				ke.ignored = append(ke.ignored, s.variable)
			}
		}
		return nil
	}
	var binds, advertised [][2]string
	var err error
	if haveLs {
		if binds, err = splitListeners(ls.variable, ls.value); err != nil {
			return err
		}
		ke.listenerSource = ls.variable
	}
	if haveAdv {
		if advertised, err = splitListeners(adv.variable, adv.value); err != nil {
			return err
		}
		advertised = slices.DeleteFunc(advertised, func(l [2]string) bool { return controllers[l[0]] })
		if ke.listenerSource != "" {
			ke.listenerSource += ", "
		}
		ke.listenerSource += adv.variable
	}
	if !haveLs {
		// apache/kafka: listeners are the advertised ones on every interface.
		for _, a := range advertised {
			_, port, err := net.SplitHostPort(a[1])
			if err != nil {
				return fmt.Errorf("%s: %q: %w", adv.variable, a[0]+"://"+a[1], err)
			}
			binds = append(binds, [2]string{a[0], net.JoinHostPort("0.0.0.0", port)})
		}
	}
	var dropped []string
	binds = slices.DeleteFunc(binds, func(l [2]string) bool {
		if controllers[l[0]] {
			dropped = append(dropped, l[0])
			return true
		}
		return false
	})
	for _, name := range dropped {
		ke.ignored = append(ke.ignored, "listener "+name)
	}
	if len(binds) == 0 {
		return fmt.Errorf("%s: no listener but the controller's (%s)", ke.listenerSource, strings.Join(dropped, ","))
	}

	protocols := map[string]string{}
	if s, ok := take("listener.security.protocol.map"); ok {
		for entry := range strings.SplitSeq(s.value, ",") {
			if entry = strings.TrimSpace(entry); entry == "" {
				continue
			}
			name, proto, ok := strings.Cut(entry, ":")
			if !ok {
				return fmt.Errorf("%s: %q is not NAME:PROTOCOL", s.variable, entry)
			}
			protocols[strings.ToUpper(strings.TrimSpace(name))] = strings.ToUpper(strings.TrimSpace(proto))
		}
	}
	for _, b := range binds {
		proto, ok := protocols[b[0]]
		if !ok {
			switch b[0] {
			case "PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL":
				proto = b[0]
			default:
				ke.warnings = append(ke.warnings, fmt.Sprintf("listener %s is not in KAFKA_LISTENER_SECURITY_PROTOCOL_MAP; Gregor serves it as PLAINTEXT", b[0]))
				continue
			}
		}
		if proto != "PLAINTEXT" {
			return fmt.Errorf("listener %s uses security protocol %s: Gregor serves PLAINTEXT only", b[0], proto)
		}
	}
	if s, ok := take("security.inter.broker.protocol"); ok && strings.ToUpper(strings.TrimSpace(s.value)) != "PLAINTEXT" {
		return fmt.Errorf("%s=%s: Gregor serves PLAINTEXT only", s.variable, s.value)
	}
	if s, ok := take("inter.broker.listener.name"); ok {
		name := strings.ToUpper(strings.TrimSpace(s.value))
		i := slices.IndexFunc(binds, func(l [2]string) bool { return l[0] == name })
		if i < 0 {
			return fmt.Errorf("%s=%s names no listener of %s", s.variable, s.value, ke.listenerSource)
		}
		// Brokers reach each other through the first listener.
		first := binds[i]
		binds = append([][2]string{first}, slices.Delete(slices.Clone(binds), i, i+1)...)
	}
	join := func(ls [][2]string) string {
		parts := make([]string, len(ls))
		for i, l := range ls {
			parts[i] = l[0] + "://" + l[1]
		}
		return strings.Join(parts, ",")
	}
	ke.flags["listeners"] = join(binds)
	if len(advertised) > 0 {
		ke.flags["advertised-listeners"] = join(advertised)
	}
	return nil
}

// readVoters reads controller.quorum.voters. With one voter there is
// nothing to do: a broker runs a one-member embedded etcd by default. With
// several, the embedded etcd cluster gets one member per voter, its peer
// address the voter's (the controller port, which Gregor does not
// otherwise use) and its client address the voter's host at 2379.
func (ke *kafkaEnv) readVoters(s kafkaSetting) error {
	var voters []quorumVoter
	for entry := range strings.SplitSeq(s.value, ",") {
		if entry = strings.TrimSpace(entry); entry == "" {
			continue
		}
		idStr, addr, ok := strings.Cut(entry, "@")
		id, err := strconv.Atoi(idStr)
		if !ok || err != nil || id < 0 {
			return fmt.Errorf("%s: %q is not id@host:port", s.variable, entry)
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" {
			return fmt.Errorf("%s: %q is not id@host:port", s.variable, entry)
		}
		voters = append(voters, quorumVoter{id: id, host: host, port: port})
	}
	if len(voters) < 2 {
		ke.ignored = append(ke.ignored, s.variable)
		return nil
	}
	ke.voters = voters
	return nil
}

// etcdFlags are the embedded etcd flags that the voters set, for node id.
func (ke *kafkaEnv) etcdFlags(nodeID int) (map[string]string, error) {
	var members []string
	self := -1
	for i, v := range ke.voters {
		members = append(members, fmt.Sprintf("%d=http://%s", v.id, net.JoinHostPort(v.host, v.port)))
		if v.id == nodeID {
			self = i
		}
	}
	if self < 0 {
		return nil, fmt.Errorf("KAFKA_CONTROLLER_QUORUM_VOTERS does not name node %d", nodeID)
	}
	// The client address is the voter's host at etcd's port: two voters
	// on one host would both claim it.
	hosts := map[string]int{}
	for _, v := range ke.voters {
		if other, ok := hosts[v.host]; ok {
			return nil, fmt.Errorf("KAFKA_CONTROLLER_QUORUM_VOTERS: voters %d and %d are both on host %s, and each voter's embedded etcd serves clients on its host's port 2379; "+
				"give every voter its own host, or set GREGOR_ETCD_INITIAL_CLUSTER, GREGOR_ETCD_PEER_ADDR and GREGOR_ETCD_CLIENT_ADDR instead", other, v.id, v.host)
		}
		hosts[v.host] = v.id
	}
	v := ke.voters[self]
	return map[string]string{
		"etcd-initial-cluster": strings.Join(members, ","),
		"etcd-peer-addr":       net.JoinHostPort(v.host, v.port),
		"etcd-client-addr":     net.JoinHostPort(v.host, "2379"),
	}, nil
}

// etcdFlagNames are the serve flags that say which etcd the broker uses;
// one set by a flag or GREGOR_* variable overrides the Kafka voters.
var etcdFlagNames = []string{"etcd-endpoints", "etcd-initial-cluster", "etcd-peer-addr", "etcd-client-addr"}

// listenerFlags are the serve flags that say where the broker listens; one
// set by a flag or GREGOR_* variable overrides every Kafka listener setting.
var listenerFlags = []string{"listen", "advertise", "listeners", "advertised-listeners"}

// kafkaEnvSwitch is the variable that turns the Kafka environment on.
const kafkaEnvSwitch = "GREGOR_KAFKA_ENV"

// applyKafkaEnv reads the Kafka container environment when environ has
// GREGOR_KAFKA_ENV=1, sets the serve flags it implies that are not set
// otherwise, logs what it ignores, and returns the broker configs it
// passes through. Without GREGOR_KAFKA_ENV=1 it does nothing.
func applyKafkaEnv(c *cli.Context, environ []string, log zerolog.Logger) (map[string]string, error) {
	if !slices.Contains(environ, kafkaEnvSwitch+"=1") {
		return nil, nil
	}
	gregorListeners := slices.ContainsFunc(listenerFlags, c.IsSet)
	ke, err := readKafkaEnv(environ, broker.IsBrokerConfig, !gregorListeners)
	if err != nil {
		return nil, fmt.Errorf("reading KAFKA_* variables: %w", err)
	}
	for _, flag := range []string{"node-id", "data-dir", "cluster-id", "rack", "listeners", "advertised-listeners"} {
		v, ok := ke.flags[flag]
		if !ok {
			continue
		}
		if flag == "listeners" || flag == "advertised-listeners" {
			if gregorListeners {
				continue
			}
		} else if c.IsSet(flag) {
			continue
		}
		if err := c.Set(flag, v); err != nil {
			return nil, fmt.Errorf("KAFKA_* variables: --%s=%s: %w", flag, v, err)
		}
	}
	gregorEtcd := slices.ContainsFunc(etcdFlagNames, c.IsSet)
	if ke.bootstrapCount > 0 {
		switch {
		case gregorEtcd || ke.votersSet:
			ke.ignored = append(ke.ignored, ke.bootstrap.variable)
		default:
			// Each node would start a one-member etcd of its own: N
			// clusters that do not know each other.
			return nil, fmt.Errorf("%s names %d controllers, but Gregor cannot tell the embedded etcd members from it: set KAFKA_CONTROLLER_QUORUM_VOTERS (id@host:port of each node) or the GREGOR_ETCD_* settings",
				ke.bootstrap.variable, ke.bootstrapCount)
		}
	}
	if len(ke.voters) > 0 {
		if gregorEtcd {
			log.Warn().Msg("GREGOR_* etcd settings win over KAFKA_CONTROLLER_QUORUM_VOTERS")
		} else {
			flags, err := ke.etcdFlags(c.Int("node-id"))
			if err != nil {
				return nil, fmt.Errorf("reading KAFKA_* variables: %w", err)
			}
			for _, flag := range etcdFlagNames[1:] {
				if err := c.Set(flag, flags[flag]); err != nil {
					return nil, fmt.Errorf("KAFKA_* variables: --%s=%s: %w", flag, flags[flag], err)
				}
			}
			log.Info().Str("etcd_initial_cluster", flags["etcd-initial-cluster"]).
				Msg("KAFKA_CONTROLLER_QUORUM_VOTERS: each voter is a member of the embedded etcd cluster")
		}
	}
	if gregorListeners && ke.listenerSource != "" {
		log.Warn().Str("ignored", ke.listenerSource).Msg("GREGOR_* listener settings win over the Kafka ones")
	}
	if len(ke.ignored) > 0 {
		log.Info().Strs("settings", ke.ignored).Msg("KRaft, ZooKeeper and JVM-tuning settings ignored: Gregor keeps its metadata in etcd and has no controller listener")
	}
	for _, v := range ke.unknown {
		log.Warn().Str("variable", v).Msg("unknown Kafka setting ignored")
	}
	for _, w := range ke.warnings {
		log.Warn().Msg(w)
	}
	return ke.configs, nil
}
