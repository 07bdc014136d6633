#!/usr/bin/env bash
# demo.sh: the main job.  Installs what is missing, builds, and runs an agent
# session (examples/agent.lua) against a fresh store.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
store=${1:-$(mktemp -d)/agent-store}
LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua/?.so;;" \
  lua5.4 examples/agent.lua "$store"
