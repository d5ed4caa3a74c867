#!/usr/bin/env bash
# A local Apicurio Registry for the schema-registry tests: the Confluent-compatible API, in memory, on 127.0.0.1.
#
# Usage: registry.sh fetch|start|stop|url
#
#   fetch   fetch the registry from Maven Central and unpack it into the cache dir (skipped once done)
#   start   start the registry and wait until its API answers; prints the Confluent API URL
#   stop    stop the registry this script started: SIGTERM, then SIGKILL after REGISTRY_STOP_TIMEOUT
#   url     print the Confluent API URL (for TEST_SCHEMA_REGISTRY_URL)
#
# Environment:
#   REGISTRY_CACHE_DIR      the unpacked registry  (default ${XDG_CACHE_HOME:-$HOME/.cache}/kafka-sidecar/apicurio-registry-<version>)
#   REGISTRY_STATE_DIR      pid and log            (default ${TMPDIR:-/tmp}/kafka-sidecar-registry)
#   REGISTRY_PORT           HTTP port              (default 18081)
#   REGISTRY_START_TIMEOUT  seconds to wait for the API  (default 120)
#   REGISTRY_STOP_TIMEOUT   seconds to wait for a graceful stop  (default 20)
#   JAVA_HOME               the Java 17+ runtime to use (default: java on PATH)
#
# Only the process whose pid this script recorded, and whose command line still names the registry jar and
# the port, is ever signalled.
set -euo pipefail

readonly version=3.0.9
readonly artifact="io.apicurio:apicurio-registry-app:$version:tar.gz:all"
readonly jar="apicurio-registry-app-$version-runner.jar"
readonly cache_dir="${REGISTRY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-sidecar/apicurio-registry-$version}"
readonly state_dir="${REGISTRY_STATE_DIR:-${TMPDIR:-/tmp}/kafka-sidecar-registry}"
readonly port="${REGISTRY_PORT:-18081}"
readonly start_timeout="${REGISTRY_START_TIMEOUT:-120}"
readonly stop_timeout="${REGISTRY_STOP_TIMEOUT:-20}"
readonly java_bin="${JAVA_HOME:+$JAVA_HOME/bin/}java"
readonly pidfile="$state_dir/registry.pid"
readonly logfile="$state_dir/registry.log"

log() { printf 'registry.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

url() { echo "http://127.0.0.1:$port/apis/ccompat/v7"; }

fetch() {
	if [[ -f "$cache_dir/$jar" ]]; then
		log "registry $version cached in $cache_dir"
		return 0
	fi
	command -v mvn >/dev/null || die "mvn not found on PATH; install Maven to fetch the registry"
	log "fetching $artifact"
	# The artifact's parent POM is not published, so only the artifact itself is fetched (-Dtransitive=false).
	local out repo
	if ! out="$(mvn -B -q -Dstyle.color=never org.apache.maven.plugins:maven-dependency-plugin:2.8:get \
		-Dartifact="$artifact" -Dtransitive=false 2>&1)"; then
		printf '%s\n' "$out" >&2
		die "mvn could not fetch $artifact"
	fi
	repo="${MAVEN_LOCAL_REPO:-$HOME/.m2/repository}"
	local tarball="$repo/io/apicurio/apicurio-registry-app/$version/apicurio-registry-app-$version-all.tar.gz"
	[[ -f "$tarball" ]] || die "$tarball not found after the fetch (set MAVEN_LOCAL_REPO to Maven's local repository)"
	# Unpacked into a private dir first, so an interrupted fetch never leaves a cache that looks complete.
	local tmp="$cache_dir.partial.$$"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	tar -xzf "$tarball" -C "$tmp"
	[[ -f "$tmp/$jar" ]] || die "$tarball holds no $jar"
	rm -rf "$cache_dir"
	mv "$tmp" "$cache_dir"
	log "unpacked into $cache_dir"
}

check_java() {
	command -v "$java_bin" >/dev/null || die "java not found (set JAVA_HOME or put java on PATH)"
	local v
	v="$("$java_bin" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')"
	if ! [[ "$v" =~ ^[0-9]+$ ]] || ((v < 17)); then
		die "the registry needs Java 17 or newer; $java_bin is ${v:-unknown}"
	fi
}

# registry_pid: prints the recorded pid when that process is alive and is still this registry.
registry_pid() {
	[[ -f "$pidfile" ]] || return 1
	local pid args
	pid="$(<"$pidfile")"
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	args="$(ps -ww -o args= -p "$pid" 2>/dev/null)" || return 1
	[[ "$args" == *"-Dquarkus.http.port=$port "*"$jar"* ]] || return 1
	echo "$pid"
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# answers: true when the Confluent API lists its subjects.
answers() {
	local reply
	reply="$( (exec 3<>"/dev/tcp/127.0.0.1/$port" &&
		printf 'GET /apis/ccompat/v7/subjects HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 &&
		timeout 5 head -n 1 <&3) 2>/dev/null)" || return 1
	[[ "$reply" == *" 200 "* ]]
}

start() {
	local pid deadline
	if pid="$(registry_pid)"; then
		die "registry already running (pid $pid) in $state_dir; run '$0 stop' first"
	fi
	check_java
	fetch
	listening "$port" && die "port $port is already in use by a process this script did not start"
	mkdir -p "$state_dir"
	# A small heap, the serial collector and the C1 compiler only: it shares two cores with the tests.
	(
		cd "$state_dir"
		nohup "$java_bin" -Xms64m -Xmx384m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
			-Djava.awt.headless=true -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
			-jar "$cache_dir/$jar" </dev/null >"$logfile" 2>&1 &
		echo $! >"$pidfile"
	)
	pid="$(<"$pidfile")"
	log "registry starting, pid $pid, log $logfile"
	deadline=$(($(date +%s) + start_timeout))
	until answers; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 40 "$logfile" >&2 || true
			die "the registry exited while starting"
		fi
		if (($(date +%s) >= deadline)); then
			tail -n 40 "$logfile" >&2 || true
			stop
			die "the registry did not answer within ${start_timeout}s"
		fi
		sleep 0.5
	done
	log "registry up"
	url
}

stop() {
	local pid deadline
	if ! pid="$(registry_pid)"; then
		log "registry not running"
		rm -f "$pidfile"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	deadline=$(($(date +%s) + stop_timeout))
	while kill -0 "$pid" 2>/dev/null && [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" != Z* ]]; do
		if (($(date +%s) >= deadline)); then
			log "registry (pid $pid) still running ${stop_timeout}s after SIGTERM; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.2
	done
	rm -f "$pidfile"
	log "registry stopped"
}

case "${1:-}" in
fetch) fetch ;;
start) start ;;
stop) stop ;;
url) url ;;
*)
	sed -n '4,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
	;;
esac
