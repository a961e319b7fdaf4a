#!/usr/bin/env bash
# The demo, from a fresh clone: starts moto on a free loopback port behind the AWS fidelity layer
# (which makes it answer as AWS documents: updates that take time, no LastUpdateStatus in
# listings, RevisionId preconditions), seeds a demo account with a fleet of functions and 14
# days of metrics, runs every event in events/ through `trimtab invoke`, and prints the
# summaries. Full JSON reports land in target/demo/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build --locked --quiet -p trimtab -p trimtab-tests --bins
bin="${CARGO_TARGET_DIR:-target}/debug"
moto="$(scripts/emulator.sh start)"
mkdir -p .emulator
"$bin/aws-fidelity" "$moto" > .emulator/fidelity.endpoint &
fidelity=$!
trap 'kill $fidelity 2>/dev/null || true; scripts/emulator.sh stop' EXIT
for _ in $(seq 1 50); do [ -s .emulator/fidelity.endpoint ] && break; sleep 0.1; done
endpoint="$(cat .emulator/fidelity.endpoint)"

# Dummy credentials and the local endpoint, through the standard configuration chain.
export AWS_ENDPOINT_URL="$endpoint" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing \
  AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true RUST_LOG="${RUST_LOG:-warn}" \
  TRIMTAB_TABLE=trimtab-decisions-demo
"$bin/seed-demo" "${DEMO_FUNCTIONS:-36}"

out="${CARGO_TARGET_DIR:-target}/demo"
mkdir -p "$out"
# The read-only analyses first, then the apply sample (it changes the shop-* functions), the
# rest, and the cost analysis last (it reads the other jobs' results).
ordered="events/rightsizing-direct.json $(ls events/dynamodb-*.json) $(ls events/rightsizing-*.json | grep -v rightsizing-direct.json) $(ls events/performance-*.json) $(ls events/cost-*.json) $(ls events/api-*.json)"
for event in $ordered; do
  name="$(basename "$event" .json)"
  case "$name" in
    rightsizing-*) function=RightSizingFunction ;;
    dynamodb-*) function=DynamoDBScalingFunction ;;
    cost-*) function=CostAnalysisFunction ;;
    performance-*) function=PerformanceMonitorFunction ;;
    api-*) function=ApiFunction ;;
    *) echo "demo: no function for $event" >&2; exit 1 ;;
  esac
  # Logs and EMF metric lines go to stderr, kept beside each report.
  if ! "$bin/trimtab" invoke "$function" --event "$event" > "$out/$name.json" 2> "$out/$name.log"; then
    echo "demo: $event failed:" >&2
    tail -5 "$out/$name.log" >&2
    exit 1
  fi
  echo "demo: $event -> $out/$name.json" >&2
done
echo
"$bin/trimtab" summary "$out/rightsizing-direct.json"
echo
echo "Apply mode on shop-* (guarded, recorded in the decision table, at most 2x per run):"
"$bin/trimtab" summary "$out/rightsizing-apply-shop.json"
echo
echo "DynamoDB: billing mode and target tracking chosen by replaying each table's traffic:"
"$bin/trimtab" summary "$out/dynamodb-direct.json"
echo
echo "DynamoDB predictive scaling: a forecast's schedule replayed against target tracking alone:"
"$bin/trimtab" summary "$out/dynamodb-predictive.json" | sed -n '/^Predictive scaling/,/^Saves/p' | grep -v '^Saves'
echo
echo "Performance: SLOs, error budgets, burn-rate alerts; dashboard and alarms kept in step:"
"$bin/trimtab" summary "$out/performance-direct.json" > "$out/performance-direct.txt"
head -6 "$out/performance-direct.txt"
echo "  ... (all subjects in $out/performance-direct.txt)"
{ grep -E "^Health" "$out/performance-direct.txt"; grep -E "^Bottleneck" "$out/performance-direct.txt" | head -3
  grep -E "^API capacity" "$out/performance-direct.txt"
  grep -E "^Dashboard" "$out/performance-direct.txt"
  echo "The scheduled run after it: $("$bin/trimtab" summary "$out/performance-scheduled.json" | grep -E "^Dashboard")"; } || true
echo
echo "Costs: 90 days from Cost Explorer, anomalies, month-end forecast against the budget:"
"$bin/trimtab" summary "$out/cost-direct.json"
echo
echo "The on-demand API (same job code; IAM-authorised; bad input refused with a JSON error):"
for name in api-status api-apply-not-listed api-wrong-type api-wrong-method; do
  printf '  %-28s %s\n' "$name" "$(tr -d '\n' < "$out/$name.json" | sed -E 's/.*"statusCode": ([0-9]+).*/\1/') $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); b=json.loads(r["body"]); print(b.get("error",{}).get("message","ok")[:90])' "$out/$name.json")"
done
echo
echo "Audit trail: $bin/trimtab history <function>; undo: $bin/trimtab rollback <function>"

