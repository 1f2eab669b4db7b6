#!/usr/bin/env bash
# Serving comparison behind docs/PERFORMANCE.md: start gunicorn (gunicorn.conf.py) with the
# given GUNICORN_* / DATABASE_* variables, drive it with wrk, print one line of results.
#
#   TOKEN=<api key> bench/wrk_matrix.sh LABEL [VAR=value ...]
#   e.g. TOKEN=... bench/wrk_matrix.sh gthread3x4 GUNICORN_WORKERS=3 GUNICORN_THREADS=4
#
# Needs wrk (apt-get install wrk), DATABASE_URL, REDIS_URL and DJANGO_SECRET_KEY (or
# DJANGO_DEBUG=1) in the environment. URL (default /api/me/), DUR (10s), CONNS (50) and
# PORT (8101) override. server_cpu_per_req_us is the CPU time of gunicorn's processes
# (/proc/<pid>/stat) divided by the requests served: robust against a busy machine.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 2; }
: "${TOKEN:?set TOKEN to an API key (tenants.services.api_token_create)}"
label=$1; shift
mkdir -p reports
port=${PORT:-8101}
export DJANGO_SECURE_SSL_REDIRECT=0 DJANGO_SECURE_COOKIES=0 DJANGO_HSTS_SECONDS=0
env "$@" .venv/bin/gunicorn -c gunicorn.conf.py -b "127.0.0.1:$port" carenotes.wsgi \
  >"reports/wrk-$label-server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "localhost:$port/healthz" >/dev/null && break; sleep 0.2; done
for _ in $(seq 10); do curl -sf -H "Authorization: Token $TOKEN" "localhost:$port${URL:-/api/me/}" >/dev/null; done

ticks() { local t=0 f; for p in $server $(pgrep -P "$server"); do read -r -a f <"/proc/$p/stat"; t=$((t + f[13] + f[14])); done; echo $t; }
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
t0=$(ticks); b0=$(busy); s0=$(date +%s.%N)
wrk -t2 -c"${CONNS:-50}" -d"${DUR:-10s}" --latency -H "Authorization: Token $TOKEN" \
  "http://127.0.0.1:$port${URL:-/api/me/}" >"reports/wrk-$label.txt"
t1=$(ticks); b1=$(busy); s1=$(date +%s.%N)

out="reports/wrk-$label.txt"
reqs=$(awk '/requests in/{print $1}' "$out")
others=$(python3 -c "print(round(($b1 - $b0 - ($t1 - $t0)) / 100 / ($s1 - $s0), 2))")
echo "$label rps=$(awk '/Requests\/sec/{print $2}' "$out")" \
  "p50=$(awk '$1=="50%"{print $2}' "$out") p99=$(awk '$1=="99%"{print $2}' "$out")" \
  "server_cpu_per_req_us=$(( (t1 - t0) * 10000 / reqs ))" \
  "busy_cores_not_server=$others $(grep -E 'Non-2xx|Socket errors' "$out" | tr '\n' ' ')"
