# shellcheck shell=bash
# Shared helpers of scripts/test and scripts/playground. Source it; it defines functions only
# (plus REPO), and is safe under `set -euo pipefail`.
#
#   ensure_venv                 create/refresh $REPO/.venv from tests/requirements.txt, put it first on PATH
#   ensure_venv_at DIR REQFILE  create/refresh the virtualenv DIR from REQFILE (a sha256 stamp of REQFILE in
#                               DIR says it is up to date); PATH and VIRTUAL_ENV are left alone: call its
#                               binaries by path
#   free_port                   print a free loopback TCP port
#   start_moto PORT LOGFILE     start moto's server in the background on 127.0.0.1:PORT, wait until it answers
#                               and keep ECS tasks RUNNING (manual state transitions); sets MOTO_PID
#   stop_moto [PID]             stop the server that start_moto started, or PID (no-op when none)
#   moto_answers PORT           exit 0 when a moto server answers on 127.0.0.1:PORT
#   start_aws_proxy UPSTREAM LOG PORT [ARGS...]
#                               start tests/proxy/aws_proxy.py in front of UPSTREAM (moto) on 127.0.0.1:PORT
#                               (0: any free port) with the test bed's corrections (--moto-compat: task
#                               containers' numbers, RunTask's clientToken; --cbor-to-json: CloudWatch's
#                               protocol) and ARGS; no latency, no throttling. Sets PROXY_PID and
#                               PROXY_ENDPOINT
#   start_model_proxy UPSTREAM LOG VIOLATIONS
#                               start_aws_proxy that also checks every request against AWS's API model
#                               (--validate refuse), appending each request AWS would refuse to VIOLATIONS
#                               (JSON lines): scripts/test's endpoint
#   stop_model_proxy            stop the proxy started here (no-op when none)

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO

MOTO_PID="${MOTO_PID:-}"

_log() { printf '%s\n' "$*" >&2; }

ensure_venv() {
    local venv="$REPO/.venv"
    ensure_venv_at "$venv" "$REPO/tests/requirements.txt" || return
    export VIRTUAL_ENV="$venv"
    case "$PATH" in
        "$venv/bin:"*) ;;
        *) PATH="$venv/bin:$PATH" ;;
    esac
    export PATH
}

ensure_venv_at() {
    local venv="$1" req="$2" lock fd rc=0
    if [[ ! -f "$req" ]]; then
        _log "ensure_venv: $req missing"
        return 1
    fi
    # One installer at a time (scripts/test and scripts/playground may start together); one lock
    # for all the virtualenvs of this checkout.
    lock="${TMPDIR:-/tmp}/ecs-autopilot-venv-$(printf '%s' "$REPO" | sha256sum | cut -c1-12).lock"
    exec {fd}>"$lock"
    flock "$fd"
    _ensure_venv_locked "$venv" "$req" "$venv/.requirements.sha256" || rc=$?
    flock -u "$fd"
    exec {fd}>&-
    return "$rc"
}

_ensure_venv_locked() {
    local venv="$1" req="$2" stamp="$3" want have="" out
    local name="${venv#"$REPO"/}" reqname="${req#"$REPO"/}"
    if [[ -e "$venv" ]] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        _log "ensure_venv: $venv is broken (python moved?): recreating it"
        rm -rf "$venv"
    fi
    if [[ ! -x "$venv/bin/python" ]]; then
        _log "ensure_venv: creating $venv"
        python3 -m venv "$venv" || { _log "ensure_venv: python3 -m venv $venv failed"; return 1; }
    fi
    want="$(sha256sum "$req" | cut -d' ' -f1)"
    [[ -n "$want" ]] || { _log "ensure_venv: cannot read $req"; return 1; }
    [[ -f "$stamp" ]] && have="$(cat "$stamp")"
    [[ "$want" == "$have" ]] && return 0
    _log "ensure_venv: installing $reqname into $name (the first time takes a minute or two)"
    out="$(mktemp)"
    if ! "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req" >"$out" 2>&1; then
        cat "$out" >&2
        rm -f "$out"
        _log "ensure_venv: pip install -r $reqname into $name failed"
        return 1
    fi
    # pip -q still prints warnings worth seeing
    grep -v '^[[:space:]]*$' "$out" >&2 || true
    rm -f "$out"
    printf '%s\n' "$want" >"$stamp"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# moto_answers PORT: a moto server (not just anything) answers on that port.
moto_answers() {
    local port="$1"
    python3 - "$port" <<'PY' >/dev/null 2>&1
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

# moto_keep_tasks_running PORT: ECS tasks otherwise advance one lifecycle step per describe_tasks
# and are STOPPED after about four describes (TESTBED.md).
moto_keep_tasks_running() {
    local port="$1"
    python3 - "$port" <<'PY'
import sys, urllib.request, json
body = json.dumps({"model_name": "ecs::task",
                   "transition": {"progression": "manual", "times": 1000000}}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/moto-api/state-manager/set-transition",
                             data=body, method="POST", headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=10) as r:
    if r.status != 201 and r.status != 200:
        sys.exit(f"set-transition answered HTTP {r.status}")
PY
}

start_moto() {
    local port="$1" logfile="$2" i
    local bin="$REPO/.venv/bin/moto_server"
    if [[ ! -x "$bin" ]]; then
        _log "start_moto: $bin missing (run ensure_venv first)"
        return 1
    fi
    mkdir -p "$(dirname "$logfile")"
    # setsid: own process group, so a Ctrl-C in the caller's terminal doesn't reach it and
    # stop_moto can end exactly this server.
    setsid "$bin" -H 127.0.0.1 -p "$port" >"$logfile" 2>&1 </dev/null &
    MOTO_PID=$!
    export MOTO_PID
    for ((i = 0; i < 150; i++)); do # 150 x 0.2 s = 30 s
        if ! kill -0 "$MOTO_PID" 2>/dev/null; then
            _log "start_moto: moto_server exited at start (port $port taken?); last lines of $logfile:"
            tail -n 20 "$logfile" >&2 || true
            MOTO_PID=""
            return 1
        fi
        if moto_answers "$port"; then
            moto_keep_tasks_running "$port" || { _log "start_moto: set-transition failed"; stop_moto; return 1; }
            return 0
        fi
        sleep 0.2
    done
    _log "start_moto: moto_server (pid $MOTO_PID) did not answer on 127.0.0.1:$port within 30 s; last lines of $logfile:"
    tail -n 20 "$logfile" >&2 || true
    stop_moto
    return 1
}

stop_moto() {
    local pid="${1:-$MOTO_PID}" i
    [[ -n "$pid" ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    [[ "$pid" == "$MOTO_PID" ]] && MOTO_PID=""
    return 0
}

PROXY_PID="${PROXY_PID:-}"
PROXY_ENDPOINT="${PROXY_ENDPOINT:-}"

start_model_proxy() {
    local upstream="$1" logfile="$2" violations="$3"
    start_aws_proxy "$upstream" "$logfile" 0 --validate refuse --violations-log "$violations"
}

start_aws_proxy() {
    local upstream="$1" logfile="$2" port="$3" i addr=""
    shift 3
    local py="$REPO/.venv/bin/python" out
    mkdir -p "$(dirname "$logfile")"
    out="$logfile.stdout"
    : >"$out"
    # No latency, no throttling: per-test proxies add those where a test wants them.
    setsid "$py" "$REPO/tests/proxy/aws_proxy.py" --upstream "$upstream" --port "$port" --latency-ms 0 --no-throttle \
        --moto-compat --cbor-to-json "$@" >"$out" 2>"$logfile" </dev/null &
    PROXY_PID=$!
    export PROXY_PID
    for ((i = 0; i < 150; i++)); do # 30 s: the first start loads botocore
        addr="$(sed -n 's/^listening on //p' "$out" | head -n 1)"
        [[ -n "$addr" ]] && break
        if ! kill -0 "$PROXY_PID" 2>/dev/null; then
            _log "start_aws_proxy: aws_proxy.py exited at start; last lines of $logfile:"
            tail -n 20 "$logfile" >&2 || true
            PROXY_PID=""
            return 1
        fi
        sleep 0.2
    done
    if [[ -z "$addr" ]]; then
        _log "start_aws_proxy: aws_proxy.py did not start within 30 s"
        stop_model_proxy
        return 1
    fi
    PROXY_ENDPOINT="http://$addr"
    export PROXY_ENDPOINT
}

stop_model_proxy() {
    [[ -n "$PROXY_PID" ]] || return 0
    kill "$PROXY_PID" 2>/dev/null || true
    wait "$PROXY_PID" 2>/dev/null || true
    PROXY_PID=""
    return 0
}
