#!/bin/sh
# nginx_test.sh ROOT BUILD TMPBASE: examples/openresty under Debian's nginx
# with libnginx-mod-http-lua, as a user would run it.
#
# nginx with 4 workers in a private prefix, on a free loopback port, every
# worker opening one store (the module built for LuaJIT).  4 loopback
# clients (curl, keep-alive) send a bounded mixed load: memories, kv
# writes and reads, searches, state updates and reads.  When a quarter of
# it is answered, a worker that has been answering is killed (-9); the
# master starts another.  Then every acknowledged key is read back over
# new connections (the new worker answers too), nginx is stopped, and the
# store is checked: every acknowledged write is in it.  No worker may log
# an error.  Exit 77 (a skip for ctest) when nginx, its Lua module, curl
# or the LuaJIT build of the module is missing.
set -eu
root=$1 build=$2
base=${3:-${TMPDIR:-/tmp}}
CLIENTS=4 N=600 # requests per client

skip() { echo "skipped: $*"; exit 77; }
command -v nginx >/dev/null 2>&1 || skip "nginx is not installed (scripts/deps.sh installs it)"
mods=/usr/lib/nginx/modules # where examples/openresty/nginx.conf loads them from
[ -f "$mods/ngx_http_lua_module.so" ] && [ -f "$mods/ndk_http_module.so" ] ||
  skip "libnginx-mod-http-lua is not installed (scripts/deps.sh installs it)"
command -v curl >/dev/null 2>&1 || skip "curl is not installed (scripts/deps.sh installs it)"
[ -f "$build/luajit/memmapfs/core.so" ] ||
  skip "memmapfs.core was not built for LuaJIT (install luajit2 and libluajit2-5.1-dev)"
command -v lua5.4 >/dev/null 2>&1 || skip "lua5.4 (the checker's interpreter) is not installed"

# A sanitizer build preloads the sanitizer runtimes (tests/integration/
# CMakeLists.txt): nginx and the checker load the instrumented module and
# need them; curl does not, and hangs with them.
preload=${LD_PRELOAD:-}
unset LD_PRELOAD

mkdir -p "$base"
tmp=$(mktemp -d "$base/nginx.XXXXXX")
prefix=$tmp/prefix
master="" watchdog=""
cleanup() {
  kill "$watchdog" 2>/dev/null || true
  if [ -n "$master" ] && kill -0 "$master" 2>/dev/null; then
    kill -TERM "$master" 2>/dev/null || true
    sleep 1
    kill -KILL "$master" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "FAIL: interrupted, or still running after 50 s"; exit 1' INT TERM
# ctest's timeout would kill this script but not the nginx it started: stop
# first, with the cleanup above, when the minute is nearly over.  (No
# output: a leftover sleep must not hold ctest's pipe open.)
( sleep 50; kill -TERM "$(cat "$prefix/logs/nginx.pid")"; kill -TERM $$ ) >/dev/null 2>&1 &
watchdog=$!

# The prefix holds the example as it is, linked, plus the modules on the
# paths its nginx.conf names ($prefix/lua, $prefix/lib).
mkdir -p "$prefix/logs" "$prefix/tmp" "$prefix/lua" "$prefix/lib/memmapfs"
ln -s "$root/examples/openresty/agent.lua" "$prefix/agent.lua"
ln -s "$root/lua/memmapfs" "$prefix/lua/memmapfs"
ln -s "$build/luajit/memmapfs/core.so" "$prefix/lib/memmapfs/core.so"
export MEMMAPFS_STORE="$tmp/store"

check() {
  LD_PRELOAD=$preload LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua" LUA_CPATH="$build/lua/?.so" \
    lua5.4 "$root/tests/integration/nginx_check.lua" "$@"
}

# A free port: a random one; nginx refuses to start when it is taken.
tries=0
while :; do
  tries=$((tries + 1))
  port=$(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 30000 + 20000 ))
  # the example as shipped, with this port; as root, workers run as root
  # too (nginx would switch them to nobody, who cannot write the store)
  { [ "$(id -u)" -eq 0 ] && echo "user root root;"
    sed "s/127\.0\.0\.1:8080/127.0.0.1:$port/" "$root/examples/openresty/nginx.conf"; } \
    > "$prefix/nginx.conf"
  if LD_PRELOAD=$preload nginx -p "$prefix" -c nginx.conf -e logs/error.log 2>"$tmp/start.err"; then break; fi
  if [ $tries -ge 10 ] || ! grep -q "in use" "$tmp/start.err"; then
    cat "$tmp/start.err" "$prefix/logs/error.log" 2>/dev/null
    echo "FAIL: nginx did not start"
    exit 1
  fi
done
i=0
while [ ! -s "$prefix/logs/nginx.pid" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
master=$(cat "$prefix/logs/nginx.pid")

# Wait until every worker has opened the store (a request answered by a
# worker whose open timer has not run yet would get 503).
i=0
until [ "$(timeout 5 curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/state")" = 200 ]; do
  i=$((i + 1))
  [ $i -lt 50 ] || { echo "FAIL: nginx does not answer"; cat "$prefix/logs/error.log"; exit 1; }
  sleep 0.1
done
sleep 0.3
initial=$(grep -o 'start worker process [0-9]*' "$prefix/logs/error.log" | awk '{print $4}' | tr '\n' ' ')

check load "$tmp" "$port" $CLIENTS $N
pids=""
c=1
while [ $c -le $CLIENTS ]; do
  timeout 30 curl -s -K "$tmp/load-$c.curl" >"$tmp/load-$c.out" 2>/dev/null &
  pids="$pids $!"
  c=$((c + 1))
done

# A quarter of the load answered: kill the worker that answered last.
total=$((CLIENTS * N))
i=0
while :; do
  done_=$(cat "$tmp"/load-*.out | grep -c '<<@@ ' || true)
  [ "$done_" -ge $((total / 4)) ] && break
  i=$((i + 1))
  [ $i -lt 600 ] || { echo "FAIL: the load does not progress ($done_ answers)"; exit 1; }
  sleep 0.05
done
victim=$(grep -ao '<<@@ 20[014] [0-9]*' "$tmp/load-1.out" | tail -n 1 | awk '{print $3}')
[ -n "$victim" ] || { echo "FAIL: no worker pid in the answers"; exit 1; }
kill -KILL "$victim"
echo "killed worker $victim after $done_ of $total answers"

for p in $pids; do wait "$p" || true; done

check final "$tmp" "$port" $CLIENTS $N
timeout 10 curl -s -K "$tmp/final.curl" >"$tmp/final.out" 2>/dev/null || true

kill -QUIT "$master"
i=0
while kill -0 "$master" 2>/dev/null; do
  i=$((i + 1))
  [ $i -lt 200 ] || { echo "FAIL: nginx did not stop"; exit 1; }
  sleep 0.1
done
master=""

# No worker logged an error; the master's alert about the killed worker
# is the one expected line above notice.
bad=$(grep -E '\[(error|crit|alert|emerg)\]' "$prefix/logs/error.log" |
  grep -v "worker process $victim exited on signal 9" || true)
if [ -n "$bad" ]; then
  echo "FAIL: errors in nginx's log:"
  echo "$bad"
  exit 1
fi
grep -q "worker process $victim exited on signal 9" "$prefix/logs/error.log" ||
  { echo "FAIL: the worker was not killed"; exit 1; }

check verify "$tmp" "$MEMMAPFS_STORE" $CLIENTS $N "$victim" "$initial"
echo "ok"
