#!/usr/bin/env bash
# A local three-node Apache Kafka cluster for the integration tests: KRaft, every node a combined
# broker+controller, all on 127.0.0.1. The in-process fake broker does not replicate, so the durability
# tests (acks=all, min.insync.replicas, losing nodes) need this one.
#
# Usage: cluster.sh fetch|start|stop|status|seeds|kill N|stop-node N|start-node N   (N is 1, 2 or 3)
#
#   fetch         copy the broker jars from Maven into the lib dir (skipped when already complete for pom.xml)
#   start         format fresh storage with a new cluster id, start the three nodes, and wait until every
#                 broker has registered with the controller quorum and been unfenced
#   stop          stop every node: SIGTERM, then SIGKILL whatever is left after KAFKA_STOP_TIMEOUT
#   kill N        SIGKILL node N (a crash: no controlled shutdown, no flush)
#   stop-node N   SIGTERM node N and wait for it to exit (SIGKILL after KAFKA_STOP_TIMEOUT, with a warning)
#   start-node N  start node N again on its existing storage and wait until its broker port listens (or,
#                 while fewer than 2 of the 3 nodes run, only its controller port: see start_node)
#   status        one line per node: running or stopped, pid, ports
#   seeds         print the bootstrap servers, comma-separated (for TEST_KAFKA_BROKERS)
#
# Environment:
#   KAFKA_STATE_DIR      data, configs, pids and logs   (default ${TMPDIR:-/tmp}/kafka-sidecar-kafka)
#   KAFKA_LIB_DIR        broker jars                    (default ${XDG_CACHE_HOME:-$HOME/.cache}/kafka-sidecar/kafka-libs)
#   KAFKA_START_TIMEOUT  seconds to wait for nodes to come up   (default 120)
#   KAFKA_STOP_TIMEOUT   seconds to wait for a graceful stop     (default 30)
#   KAFKA_JVM_OPTS       JVM options for every node (default: small heap, serial GC, C1 only)
#   JAVA_HOME            the Java 17+ runtime to use (default: java on PATH)
#
# Only processes whose pid this script recorded in the state dir, and whose command line still names that
# node's config file, are ever signalled.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly script_dir
readonly pom="$script_dir/pom.xml"
readonly log4j_config="$script_dir/log4j2.properties"
readonly lib_dir="${KAFKA_LIB_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-sidecar/kafka-libs}"
readonly state_dir="${KAFKA_STATE_DIR:-${TMPDIR:-/tmp}/kafka-sidecar-kafka}"
readonly start_timeout="${KAFKA_START_TIMEOUT:-120}"
readonly stop_timeout="${KAFKA_STOP_TIMEOUT:-30}"
readonly java_bin="${JAVA_HOME:+$JAVA_HOME/bin/}java"
readonly nodes=(1 2 3)
# A state dir carries this file once this script made it; nothing else is ever deleted by "start".
readonly state_marker=".kafka-sidecar-test-cluster"
# Written into the lib dir after a complete copy: the pom's hash, then one jar name per line.
readonly lib_stamp=".complete"
# BrokerLifecycleManager logs this once the controller quorum has registered the broker and unfenced it.
readonly ready_line="Transitioning from RECOVERY to RUNNING"

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

usage() {
	sed -n '6,18s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
}

# Below the kernel's ephemeral range (32768-60999), so a client connection of another test cannot hold them.
broker_port() { echo $((19091 + $1)); }
controller_port() { echo $((19191 + $1)); }
node_dir() { echo "$state_dir/node-$1"; }
node_conf() { echo "$(node_dir "$1")/server.properties"; }
node_log() { echo "$(node_dir "$1")/kafka.log"; }
node_pidfile() { echo "$(node_dir "$1")/kafka.pid"; }

seeds() {
	local n out=""
	for n in "${nodes[@]}"; do
		out="${out:+$out,}127.0.0.1:$(broker_port "$n")"
	done
	echo "$out"
}

check_node() {
	[[ "${1:-}" =~ ^[123]$ ]] || die "node must be 1, 2 or 3, got '${1:-}'"
}

# listening PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
listening() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# node_pid N: prints the recorded pid of node N when that process is alive and is still node N's broker
# (the command line names its config), so a recycled pid is never mistaken for a node.
node_pid() {
	local pidfile pid args
	pidfile="$(node_pidfile "$1")"
	[[ -f "$pidfile" ]] || return 1
	pid="$(<"$pidfile")"
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	args="$(ps -ww -o args= -p "$pid" 2>/dev/null)" || return 1
	[[ "$args" == *"kafka.Kafka $(node_conf "$1")"* ]] || return 1
	echo "$pid"
}

tail_log() {
	local logf
	logf="$(node_log "$1")"
	if [[ -f "$logf" ]]; then
		log "last lines of $logf:"
		tail -n "${2:-40}" "$logf" >&2
	fi
}

pom_hash() { sha256sum "$pom" | cut -d' ' -f1; }

# lib_complete: true when the lib dir holds every jar of the last copy made for this very pom.
lib_complete() {
	local stamp="$lib_dir/$lib_stamp" hash jar
	[[ -f "$stamp" ]] || return 1
	{
		read -r hash || return 1
		[[ "$hash" == "$(pom_hash)" ]] || return 1
		while read -r jar; do
			[[ -f "$lib_dir/$jar" ]] || return 1
		done
	} <"$stamp"
}

fetch() {
	if lib_complete; then
		log "broker jars up to date in $lib_dir"
		return 0
	fi
	command -v mvn >/dev/null || die "mvn not found on PATH; install Maven to fetch the broker jars"
	local tmp="$lib_dir.partial.$$"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	log "fetching broker jars into $lib_dir"
	# The copy goes to a private dir first, so an interrupted fetch never leaves a lib dir that looks complete.
	# Maven's output is shown only when it fails: on success -q still leaves terminal escape codes.
	local out
	if ! out="$(mvn -B -q -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DoutputDirectory="$tmp" 2>&1)"; then
		printf '%s\n' "$out" >&2
		rm -rf "$tmp"
		die "mvn dependency:copy-dependencies failed for $pom"
	fi
	{
		pom_hash
		(cd "$tmp" && ls -1 -- *.jar)
	} >"$tmp/$lib_stamp"
	rm -rf "$lib_dir"
	mv "$tmp" "$lib_dir"
	log "fetched $(($(wc -l <"$lib_dir/$lib_stamp") - 1)) jars"
}

check_java() {
	command -v "$java_bin" >/dev/null || die "java not found (set JAVA_HOME or put java on PATH)"
	local version
	version="$("$java_bin" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')"
	if ! [[ "$version" =~ ^[0-9]+$ ]] || ((version < 17)); then
		die "Kafka 4 needs Java 17 or newer; $java_bin is ${version:-unknown}"
	fi
}

jvm_opts() {
	local -a opts
	if [[ -n "${KAFKA_JVM_OPTS:-}" ]]; then
		read -r -a opts <<<"$KAFKA_JVM_OPTS"
	else
		# Three brokers share two cores: a small heap, the serial collector and the C1 compiler only keep
		# start-up fast and leave CPU to the tests.
		opts=(-Xms256m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError)
	fi
	printf '%s\n' "${opts[@]}"
}

write_config() {
	local n="$1" voters="" v
	for v in "${nodes[@]}"; do
		voters="${voters:+$voters,}$v@127.0.0.1:$(controller_port "$v")"
	done
	cat >"$(node_conf "$n")" <<EOF
# Written by cluster.sh for node $n of the kafka-sidecar test cluster.
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(broker_port "$n"),CONTROLLER://127.0.0.1:$(controller_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(broker_port "$n")
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$(node_dir "$n")/data

# Durability: what the sidecar's tests rely on.
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0

# Fast failover: a killed node is fenced (and leaves the ISR) within seconds, not the default 9 s / 30 s,
# and preferred leaders come back soon after a restart.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=6000
replica.lag.time.max.ms=10000
controller.quorum.election.timeout.ms=1000
controller.quorum.fetch.timeout.ms=2000
leader.imbalance.check.interval.seconds=30
# KIP-848 consumer groups: a killed member's partitions move after 6 s, as with the classic protocol and
# SIDECAR_KAFKA_SESSION_TIMEOUT=6s, rather than the default 45 s.
group.consumer.min.session.timeout.ms=6000
group.consumer.session.timeout.ms=6000
group.consumer.min.heartbeat.interval.ms=1000
group.consumer.heartbeat.interval.ms=1000

# Small: three JVMs on two cores.
num.network.threads=2
num.io.threads=4
num.replica.fetchers=1
background.threads=4
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=16777216
offsets.topic.num.partitions=10
transaction.state.log.num.partitions=10
share.coordinator.state.topic.num.partitions=10
EOF
}

# random_cluster_id: 16 random bytes, base64url without padding, as Kafka's Uuid prints them (a leading
# '-' is avoided the way Kafka's own generator avoids it, since tools would read it as an option).
random_cluster_id() {
	local id
	while :; do
		id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
		[[ "$id" == -* ]] || break
	done
	echo "$id"
}

format_node() {
	local n="$1" cluster_id="$2" out
	if ! out="$("$java_bin" -cp "$lib_dir/*" -Dlog4j2.configurationFile="$log4j_config" \
		kafka.tools.StorageTool format --cluster-id "$cluster_id" --config "$(node_conf "$n")" 2>&1)"; then
		printf '%s\n' "$out" >&2
		die "formatting storage of node $n failed"
	fi
}

# launch N: starts node N's JVM in the background and records its pid. Its output goes to the node's log
# only, so a caller reading this script's output (a test runner) is not held open by the broker.
launch() {
	local n="$1" pid
	local -a opts
	mapfile -t opts < <(jvm_opts)
	{
		printf '\n===== cluster.sh: starting node %s at %s =====\n' "$n" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	} >>"$(node_log "$n")"
	nohup "$java_bin" "${opts[@]}" -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$log4j_config" \
		-cp "$lib_dir/*" kafka.Kafka "$(node_conf "$n")" \
		</dev/null >>"$(node_log "$n")" 2>&1 &
	pid=$!
	echo "$pid" >"$(node_pidfile "$n")"
	log "node $n started, pid $pid, log $(node_log "$n")"
}

log_size() {
	local logf
	logf="$(node_log "$1")"
	if [[ -f "$logf" ]]; then wc -c <"$logf" | tr -d ' '; else echo 0; fi
}

# wait_node N UNTIL FROM DEADLINE: waits until node N has reached UNTIL, one of
#   controller  its controller port listens (the process is up; this needs no other node)
#   broker      its broker port listens (in KRaft only once the broker has caught up with the metadata log,
#               so only while a majority of the controllers runs)
#   ready       its broker port listens and, after byte FROM of its log (earlier lines belong to an earlier
#               run), it has logged that the quorum registered and unfenced it
# Returns 1, after printing the reason and the log's tail, when the node exits or DEADLINE (epoch seconds)
# passes.
wait_node() {
	local n="$1" until="$2" from="$3" deadline="$4" port
	case "$until" in
	controller) port="$(controller_port "$n")" ;;
	*) port="$(broker_port "$n")" ;;
	esac
	while :; do
		if ! node_pid "$n" >/dev/null; then
			tail_log "$n"
			log "error: node $n exited while starting"
			return 1
		fi
		if listening "$port"; then
			# grep without -q reads to the end: with pipefail, a grep that quit early would fail the pipe
			# through tail's SIGPIPE even though it found the line.
			if [[ "$until" != ready ]] || tail -c "+$((from + 1))" "$(node_log "$n")" | grep -F "$ready_line" >/dev/null; then
				return 0
			fi
		fi
		if (($(date +%s) >= deadline)); then
			tail_log "$n"
			log "error: node $n not $until within ${start_timeout}s"
			return 1
		fi
		sleep 0.5
	done
}

check_ports_free() {
	local n port
	for n in "${nodes[@]}"; do
		for port in "$(broker_port "$n")" "$(controller_port "$n")"; do
			if listening "$port"; then
				die "port $port is already in use by a process this script did not start"
			fi
		done
	done
}

start() {
	local n running=0 cluster_id deadline
	local -A from=()
	for n in "${nodes[@]}"; do
		if node_pid "$n" >/dev/null; then running=$((running + 1)); fi
	done
	if ((running > 0)); then
		die "$running node(s) already running in $state_dir; run '$0 stop' first"
	fi
	check_java
	fetch
	check_ports_free
	if [[ -e "$state_dir" ]]; then
		# Refuse to wipe a directory this script did not create: KAFKA_STATE_DIR may point anywhere.
		if [[ ! -f "$state_dir/$state_marker" ]] && [[ -n "$(ls -A "$state_dir")" ]]; then
			die "$state_dir exists, is not empty and was not made by this script; choose another KAFKA_STATE_DIR"
		fi
		rm -rf "$state_dir"
	fi
	mkdir -p "$state_dir"
	: >"$state_dir/$state_marker"
	cluster_id="$(random_cluster_id)"
	echo "$cluster_id" >"$state_dir/cluster-id"
	log "formatting storage, cluster id $cluster_id"
	for n in "${nodes[@]}"; do
		mkdir -p "$(node_dir "$n")"
		write_config "$n"
		format_node "$n" "$cluster_id"
	done
	# All three at once: none of them can finish starting before a majority of controllers is up.
	for n in "${nodes[@]}"; do
		from[$n]="$(log_size "$n")"
		launch "$n"
	done
	deadline=$(($(date +%s) + start_timeout))
	for n in "${nodes[@]}"; do
		if ! wait_node "$n" ready "${from[$n]}" "$deadline"; then
			# A half-started cluster would only confuse the next command: take it all down.
			log "stopping the nodes this start launched"
			stop
			exit 1
		fi
	done
	log "cluster up: $(seeds)"
}

start_node() {
	local n="$1" pid port deadline m running=0
	if pid="$(node_pid "$n")"; then
		log "node $n already running, pid $pid"
		return 0
	fi
	[[ -f "$(node_conf "$n")" && -f "$(node_dir "$n")/data/meta.properties" ]] ||
		die "node $n has no formatted storage in $state_dir; run '$0 start' first"
	lib_complete || die "broker jars missing in $lib_dir; run '$0 fetch' first"
	check_java
	for port in "$(broker_port "$n")" "$(controller_port "$n")"; do
		if listening "$port"; then
			die "port $port of node $n is in use by a process this script did not start"
		fi
	done
	launch "$n"
	deadline=$(($(date +%s) + start_timeout))
	wait_node "$n" controller 0 "$deadline" || fail_node_start "$n"
	# The broker port opens only once the broker has caught up with a controller quorum. Without a majority
	# of controllers running (a test may have stopped them on purpose) that never happens, so waiting for it
	# would only end in the broker's own registration time-out; the node is up, and its broker joins once
	# enough of its peers are started.
	for m in "${nodes[@]}"; do
		if node_pid "$m" >/dev/null; then running=$((running + 1)); fi
	done
	if ((2 * running <= ${#nodes[@]})); then
		log "node $n up (controller on 127.0.0.1:$(controller_port "$n")); only $running of ${#nodes[@]} nodes run, so its broker listens once a majority does"
		return 0
	fi
	wait_node "$n" broker 0 "$deadline" || fail_node_start "$n"
	log "node $n listening on 127.0.0.1:$(broker_port "$n")"
}

fail_node_start() {
	stop_node "$1"
	exit 1
}

# wait_gone PID SECONDS: true when PID has exited within SECONDS. An exited process that its parent has
# not reaped yet (a zombie) holds no ports or files any more, so it counts as gone.
wait_gone() {
	local pid="$1" deadline=$(($(date +%s) + $2)) stat
	while stat="$(ps -o stat= -p "$pid" 2>/dev/null)" && [[ "$stat" != Z* ]]; do
		(($(date +%s) < deadline)) || return 1
		sleep 0.2
	done
}

stop_node() {
	local n="$1" pid
	if ! pid="$(node_pid "$n")"; then
		log "node $n not running"
		rm -f "$(node_pidfile "$n")"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait_gone "$pid" "$stop_timeout"; then
		log "warning: node $n (pid $pid) still running ${stop_timeout}s after SIGTERM; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		wait_gone "$pid" 10 || die "node $n (pid $pid) survived SIGKILL"
	fi
	rm -f "$(node_pidfile "$n")"
	log "node $n stopped"
}

kill_node() {
	local n="$1" pid
	if ! pid="$(node_pid "$n")"; then
		log "node $n not running"
		rm -f "$(node_pidfile "$n")"
		return 0
	fi
	kill -KILL "$pid" 2>/dev/null || true
	wait_gone "$pid" 10 || die "node $n (pid $pid) survived SIGKILL"
	rm -f "$(node_pidfile "$n")"
	log "node $n killed"
}

stop() {
	local n pid
	local -A pids=()
	# SIGTERM to all first, so they shut down together instead of one waiting on a quorum the next has left.
	for n in "${nodes[@]}"; do
		if pid="$(node_pid "$n")"; then
			pids[$n]="$pid"
			kill -TERM "$pid" 2>/dev/null || true
		else
			rm -f "$(node_pidfile "$n")"
		fi
	done
	for n in "${nodes[@]}"; do
		[[ -n "${pids[$n]:-}" ]] || continue
		pid="${pids[$n]}"
		if ! wait_gone "$pid" "$stop_timeout"; then
			log "node $n (pid $pid) still running ${stop_timeout}s after SIGTERM; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			wait_gone "$pid" 10 || die "node $n (pid $pid) survived SIGKILL"
		fi
		rm -f "$(node_pidfile "$n")"
		log "node $n stopped"
	done
	((${#pids[@]} > 0)) || log "no node running"
}

status() {
	local n pid state
	for n in "${nodes[@]}"; do
		if pid="$(node_pid "$n")"; then
			state="running pid=$pid"
			listening "$(broker_port "$n")" || state="$state (broker port not listening yet)"
		else
			state="stopped"
		fi
		echo "node $n: $state broker=127.0.0.1:$(broker_port "$n") controller=127.0.0.1:$(controller_port "$n")"
	done
}

main() {
	local cmd="${1:-}"
	case "$cmd" in
	fetch | start | stop | status | seeds)
		(($# == 1)) || usage
		;;
	kill | stop-node | start-node)
		(($# == 2)) || usage
		check_node "$2"
		;;
	*) usage ;;
	esac
	case "$cmd" in
	fetch) fetch ;;
	start) start ;;
	stop) stop ;;
	status) status ;;
	seeds) seeds ;;
	kill) kill_node "$2" ;;
	stop-node) stop_node "$2" ;;
	start-node) start_node "$2" ;;
	*) usage ;;
	esac
}

main "$@"
