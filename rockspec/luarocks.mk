# luarocks.mk: the make backend of rockspec/memmapfs-scm-1.rockspec.
# Builds memmapfs.core (engine + binding) as one shared module against
# LUA_INCDIR, the headers of the Lua luarocks targets; it links no Lua (the
# interpreter that loads it provides lua_*).  The policy VM is built beside
# it, on Lua 5.4 (see VM_SRC).  Run from the
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

# Sources by wildcard, so that a new engine file needs no edit here.  The
# policy VM (core/src/policy/ but host.c, the engine's side, and lfields.c,
# the binding's codec) is its own shared object on Lua 5.4 whatever
# LUA_INCDIR is: libmemmapfs-policy.so, installed next to core.so, where the
# engine looks for it (core/src/policy/vm.h).
VM_SRC := $(filter-out core/src/policy/host.c,$(wildcard core/src/policy/*.c))
SRC := $(wildcard core/src/*.c core/src/search/*.c bindings/lua/*.c) core/src/policy/host.c \
	core/src/policy/lfields.c
LUA54_INCDIR ?= /usr/include/lua5.4
LUA54_LIB ?= -llua5.4
HDR := $(wildcard core/include/*.h core/src/*.h core/src/search/*.h core/src/policy/*.h bindings/lua/*.h)

MMFS_CFLAGS := -std=c11 -D_GNU_SOURCE -DNDEBUG -fPIC -fvisibility=hidden -Wall \
	-DMMFS_HAVE_POLICY=1 -DMMFS_HAVE_SODIUM=1 \
	-Icore/include -Icore/src -Ibindings/lua -I$(LUA_INCDIR) \
	-I$(XXHASH_INCDIR) -I$(SODIUM_INCDIR)
MMFS_LIBS := -L$(XXHASH_LIBDIR) -L$(SODIUM_LIBDIR) -lxxhash -lsodium -lpthread -lm -ldl
VM_CFLAGS := $(subst -I$(LUA_INCDIR),-I$(LUA54_INCDIR),$(MMFS_CFLAGS))

all: $(BUILD)/memmapfs/core.so $(BUILD)/memmapfs/libmemmapfs-policy.so

$(BUILD)/memmapfs/libmemmapfs-policy.so: $(VM_SRC) $(HDR)
	mkdir -p $(BUILD)/memmapfs
	$(CC) $(CFLAGS) $(VM_CFLAGS) $(LIBFLAG) -Wl,--no-undefined -o $@ $(VM_SRC) $(LUA54_LIB)

$(BUILD)/memmapfs/core.so: $(SRC) $(HDR)
	mkdir -p $(BUILD)/memmapfs
	$(CC) $(CFLAGS) $(MMFS_CFLAGS) $(LIBFLAG) -o $@ $(SRC) $(MMFS_LIBS)

install: $(BUILD)/memmapfs/core.so $(BUILD)/memmapfs/libmemmapfs-policy.so
	mkdir -p $(INST_LIBDIR)/memmapfs $(INST_LUADIR)/memmapfs
	cp $(BUILD)/memmapfs/core.so $(INST_LIBDIR)/memmapfs/core.so
	cp $(BUILD)/memmapfs/libmemmapfs-policy.so $(INST_LIBDIR)/memmapfs/libmemmapfs-policy.so
	cp lua/memmapfs/*.lua $(INST_LUADIR)/memmapfs/

clean:
	rm -rf $(BUILD)

.PHONY: all install clean
