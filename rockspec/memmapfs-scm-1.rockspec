-- memmapfs: luarocks make rockspec/memmapfs-scm-1.rockspec (from the
-- repository root; works offline).  Builds the C module memmapfs.core from
-- the engine, the policy VM and the binding, compiled against the headers
-- of the Lua that luarocks targets (--lua-version), and installs it with
-- the Lua files of lua/memmapfs/.  The make backend runs
-- rockspec/luarocks.mk, which picks the C sources by wildcard, builds each
-- Lua's module in its own directory, and uses libsodium when it finds it.
-- rockspec/pack.sh makes a .src.rock of the checkout without a network.
rockspec_format = "3.0"
package = "memmapfs"
version = "scm-1"

source = {
  url = "git+https://example.invalid/memmapfs.git", -- unused by luarocks make
}

description = {
  summary = "Local-first memory and state store for AI agents",
  license = "MIT",
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

-- xxhash.h only (XXH3 is compiled in from the header); libsodium is
-- optional and detected by the makefile, so it is not listed here.
external_dependencies = {
  XXHASH = { header = "xxhash.h" },
  UTF8PROC = { header = "utf8proc.h", library = "utf8proc" },
  STEMMER = { header = "libstemmer.h", library = "stemmer" },
}

build = {
  type = "make",
  makefile = "rockspec/luarocks.mk",
  -- luarocks passes build_variables to the build and install_variables to
  -- `make install` alone: the install needs the same Lua, or it would
  -- look for (and build) the module of another one.
  build_variables = {
    CC = "$(CC)",
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    XXHASH_INCDIR = "$(XXHASH_INCDIR)",
  },
  install_variables = {
    CC = "$(CC)",
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    XXHASH_INCDIR = "$(XXHASH_INCDIR)",
    INST_LIBDIR = "$(LIBDIR)",
    INST_LUADIR = "$(LUADIR)",
  },
}
