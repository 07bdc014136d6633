-- memmapfs: luarocks make rockspec/memmapfs-scm-1.rockspec (from the
-- repository root; works offline).  Builds the C module memmapfs.core from
-- the engine, the policy VM and the binding, compiled against the headers
-- of the Lua that luarocks targets (--lua-version), and installs it with
-- the Lua files of lua/memmapfs/.  The make backend runs
-- rockspec/luarocks.mk, which picks the C sources by wildcard.
rockspec_format = "3.0"
package = "memmapfs"
version = "scm-1"

source = {
  url = "git+https://example.invalid/memmapfs.git", -- unused by luarocks make
}

description = {
  summary = "Local-first memory and state store for AI agents",
  detailed = [[
A store is a directory: one append-only, checksummed log read through mmap,
an in-memory index and a BM25 search engine, shared by any number of
threads and processes.  Memories, key-values, sessions, streams, documents,
state with subscribers, and Lua policies run in a sandbox inside the store.
]],
}

dependencies = {
  "lua >= 5.1, < 5.5",
}

external_dependencies = {
  XXHASH = { header = "xxhash.h", library = "xxhash" },
  SODIUM = { header = "sodium.h", library = "sodium" },
  UTF8PROC = { header = "utf8proc.h", library = "utf8proc" },
  STEMMER = { header = "libstemmer.h", library = "stemmer" },
}

build = {
  type = "make",
  makefile = "rockspec/luarocks.mk",
  build_variables = {
    CC = "$(CC)",
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    XXHASH_INCDIR = "$(XXHASH_INCDIR)",
    XXHASH_LIBDIR = "$(XXHASH_LIBDIR)",
    SODIUM_INCDIR = "$(SODIUM_INCDIR)",
    SODIUM_LIBDIR = "$(SODIUM_LIBDIR)",
  },
  install_variables = {
    INST_LIBDIR = "$(LIBDIR)",
    INST_LUADIR = "$(LUADIR)",
  },
}
