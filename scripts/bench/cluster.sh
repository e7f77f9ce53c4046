#!/usr/bin/env bash
# Two nodes behind Kamailio against one node behind it, in the same run (docs/CLUSTER.md): the
# set-up of scripts/cluster/demo.sh (a private MariaDB, deploy/kamailio/dispatcher.cfg on
# 127.0.0.1, node 1 on 127.0.0.2, node 2 on 127.0.0.3, media relayed) under the lab's ramps
# (../shared/lab/run-bench.sh against Kamailio: REGISTER with digest authentication, then calls).
# The CPU counted is the whole cluster's: the nodes, mariadbd and Kamailio.
#
#   scripts/bench/cluster.sh
#   REG_RATES="1000 2000 4000" CALL_RATES="200 400 800" STORE=sqlite scripts/bench/cluster.sh
#
# On a 2-core machine this tells the cost per request and that nothing falls over, not how far
# several machines scale. Needs: kamailio, sipp (sip-tester), mariadb-server, a built tree.
set -euo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
if [ -z "${CLUSTER_BENCH_NODES:-}" ]; then
  out=${OUT:-/tmp/mss-bench-cluster-$(date +%Y%m%d-%H%M%S)}
  mkdir -p "$out"
  for n in 1 2; do CLUSTER_BENCH_NODES=$n OUT="$out" "$self" || echo "the run with $n node(s) failed" >&2; done
  for n in 1 2; do
    [ -f "$out/nodes-$n/results.txt" ] || continue
    echo "=== $n node(s) behind Kamailio"; grep -E "^(test|reg |call )|^max " "$out/nodes-$n/results.txt"
  done
  echo
  echo "| nodes | max registrations/s passing | registrations per cluster CPU-second there | max calls/s passing | calls per cluster CPU-second there |"
  echo "| --- | --- | --- | --- | --- |"
  for n in 1 2; do
    [ -f "$out/nodes-$n/results.json" ] || continue
    node -e '
      const [file, name] = process.argv.slice(1);
      const r = JSON.parse(require("fs").readFileSync(file, "utf8"));
      const at = (kind, best) => { const st = r.steps.filter((x) => x.test === kind && x.target_rate === best && x.pass).pop(); return st ? Math.round(st.successful_per_server_cpu_s) : "-"; };
      console.log(`| ${name} | ${r.max_registrations_per_s ?? "none"} | ${at("reg", r.max_registrations_per_s)} | ${r.max_calls_per_s ?? "none"} | ${at("call", r.max_calls_per_s)} |`);
    ' "$out/nodes-$n/results.json" "$n"
  done
  echo "raw results: $out"
  exit 0
fi

# One configuration: CLUSTER_BENCH_NODES nodes behind Kamailio.
source "$(cd "$(dirname "$0")/../cluster" && pwd)/setup.sh"
store=${STORE:-mariadb}
phones=${USERS:-1000}
export QUIET_PROXY=1
# Kamailio's shared memory (-m, MB): its transactions live there; 256 runs out near 2,000
# REGISTERs a second (tm: out of mem, then 500s), as the lab's reference runs with 2,048.
export KAMAILIO_SHM_MB=${KAMAILIO_SHM_MB:-2048}
check_tools kamailio kamcmd sipp node ss
make_work
setup_store
start_node node1 127.0.0.2 40000
names=(node1)
if [ "$CLUSTER_BENCH_NODES" = 2 ]; then start_node node2 127.0.0.3 44000; names+=(node2); fi
start_kamailio "${names[@]}"
counted=("$kam_pid")
for name in "${names[@]}"; do counted+=("${node_pid[$name]}"); done
[ "$store" != mariadb ] || counted+=("$(cat "$(state_field pidFile)")")
sysctl -w net.core.rmem_max=4194304 net.core.wmem_max=4194304 >/dev/null 2>&1 || true
env OUT_DIR="$OUT/nodes-$CLUSTER_BENCH_NODES" SERVER_PID="${counted[*]}" USERS="$phones" USER_START="$first_user" \
  REG_RATES="${REG_RATES:-1000 2000 4000 6000 8000}" CALL_RATES="${CALL_RATES:-200 400 800 1200}" \
  UAS_PORT="$(free_udp_port 127.0.0.1)" UAC_PORT="$(free_udp_port 127.0.0.1)" REG_PORT="$(free_udp_port 127.0.0.1)" \
  OPT_PORT="$(free_udp_port 127.0.0.1)" LABEL="$CLUSTER_BENCH_NODES node(s) behind Kamailio, $store" \
  "$(cd "$repo/.." && pwd)/shared/lab/run-bench.sh" 127.0.0.1 "$kam_port" > "$OUT/nodes-$CLUSTER_BENCH_NODES.log" 2>&1 || true
log "ramps done: $OUT/nodes-$CLUSTER_BENCH_NODES"
