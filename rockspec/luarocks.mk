# luarocks.mk: the make backend of rockspec/memmapfs-scm-1.rockspec.
# Builds memmapfs.core (engine + policy VM + binding) as one shared module
# against LUA_INCDIR, the headers of the Lua luarocks targets; it links no
# Lua (the interpreter that loads it provides lua_*).  Run from the
# repository root; every variable below may come from luarocks.
#
#   make -f rockspec/luarocks.mk LUA_INCDIR=/usr/include/lua5.4
#   make -f rockspec/luarocks.mk install INST_LIBDIR=... INST_LUADIR=...

CC ?= cc
CFLAGS ?= -O2 -fPIC
LIBFLAG ?= -shared
LUA_INCDIR ?= /usr/include/lua5.4
XXHASH_INCDIR ?= /usr/include
XXHASH_LIBDIR ?= /usr/lib
SODIUM_INCDIR ?= /usr/include
SODIUM_LIBDIR ?= /usr/lib
# Where the module is built: MMFS_ROCK_BUILD from the environment, else
# build-rock/ in the repository (ignored by git).
BUILD := $(or $(MMFS_ROCK_BUILD),build-rock)

# Sources by wildcard, so that a new engine file needs no edit here.
SRC := $(wildcard core/src/*.c core/src/search/*.c core/src/policy/*.c bindings/lua/*.c)
HDR := $(wildcard core/include/*.h core/src/*.h core/src/search/*.h core/src/policy/*.h bindings/lua/*.h)

MMFS_CFLAGS := -std=c11 -D_GNU_SOURCE -DNDEBUG -fPIC -fvisibility=hidden -Wall \
	-DMMFS_HAVE_POLICY=1 -DMMFS_HAVE_SODIUM=1 \
	-Icore/include -Icore/src -Ibindings/lua -I$(LUA_INCDIR) \
	-I$(XXHASH_INCDIR) -I$(SODIUM_INCDIR)
MMFS_LIBS := -L$(XXHASH_LIBDIR) -L$(SODIUM_LIBDIR) -lxxhash -lsodium -lutf8proc -lstemmer -lpthread -lm

all: $(BUILD)/memmapfs/core.so

$(BUILD)/memmapfs/core.so: $(SRC) $(HDR)
	mkdir -p $(BUILD)/memmapfs
	$(CC) $(CFLAGS) $(MMFS_CFLAGS) $(LIBFLAG) -o $@ $(SRC) $(MMFS_LIBS)

install: $(BUILD)/memmapfs/core.so
	mkdir -p $(INST_LIBDIR)/memmapfs $(INST_LUADIR)/memmapfs
	cp $(BUILD)/memmapfs/core.so $(INST_LIBDIR)/memmapfs/core.so
	cp lua/memmapfs/*.lua $(INST_LUADIR)/memmapfs/

clean:
	rm -rf $(BUILD)

.PHONY: all install clean
