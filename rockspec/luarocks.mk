# luarocks.mk: the make backend of rockspec/memmapfs-scm-1.rockspec.
# Builds memmapfs.core (engine + binding) as one shared module against
# LUA_INCDIR, the headers of the Lua luarocks targets; it links no Lua (the
# interpreter that loads it provides lua_*).  The policy VM is built beside
# it, on Lua 5.4 (see VM_SRC).  Run from the
# repository root; every variable below may come from luarocks.
#
#   make -f rockspec/luarocks.mk LUA_INCDIR=/usr/include/lua5.4
#   make -f rockspec/luarocks.mk install INST_LIBDIR=... INST_LUADIR=...
#
# Needs nothing beyond a C compiler, the Lua headers and xxhash.h (XXH3 is
# compiled in from the header: no library).  libsodium is used when it is
# found (BLAKE2b checksums); MMFS_SODIUM=no builds without it.

CC ?= cc
CFLAGS ?= -O2 -fPIC
LIBFLAG ?= -shared
LUA_INCDIR ?= /usr/include/lua5.4
XXHASH_INCDIR ?= /usr/include
SODIUM_INCDIR ?= /usr/include
SODIUM_LIBDIR ?= /usr/lib

# libsodium: present when a program calling it compiles and links.
ifneq ($(MMFS_SODIUM),no)
HAVE_SODIUM := $(shell printf '\043include <sodium.h>\nint main(void) { return sodium_init(); }\n' | \
	$(CC) -x c -I$(SODIUM_INCDIR) -L$(SODIUM_LIBDIR) -o /dev/null - -lsodium >/dev/null 2>&1 && echo 1)
endif
ifeq ($(HAVE_SODIUM),1)
SODIUM_CFLAGS := -DMMFS_HAVE_SODIUM=1 -I$(SODIUM_INCDIR)
SODIUM_LIBS := -L$(SODIUM_LIBDIR) -lsodium
endif

# Sources by wildcard, so that a new engine file needs no edit here.  The
# policy VM (core/src/policy/ but host.c, the engine's side; with the Lua
# codec core/lua/lfields.c and the fields walker core/src/base/fields.c) is its
# own shared object on Lua 5.4 whatever
# LUA_INCDIR is: libmemmapfs-policy.so, installed next to core.so, where the
# engine looks for it (core/src/policy/vm.h).
VM_SRC := $(filter-out core/src/policy/host.c,$(wildcard core/src/policy/*.c)) core/lua/lfields.c \
	core/src/base/fields.c
LAYERS := base log engine search store
SRC := $(wildcard core/src/*.c $(LAYERS:%=core/src/%/*.c) bindings/lua/*.c) core/src/policy/host.c \
	core/lua/lfields.c
LUA54_INCDIR ?= /usr/include/lua5.4
LUA54_LIB ?= -llua5.4
HDR := $(wildcard core/include/*.h $(LAYERS:%=core/src/%/*.h) core/src/policy/*.h core/lua/*.h \
	bindings/lua/*.h)

MMFS_CFLAGS := -std=c11 -D_GNU_SOURCE -DNDEBUG -fPIC -fvisibility=hidden -Wall \
	-DMMFS_HAVE_POLICY=1 -DXXH_INLINE_ALL $(SODIUM_CFLAGS) \
	-Icore/include -Icore/src $(LAYERS:%=-Icore/src/%) -Icore/src/policy -Icore/lua -Ibindings/lua -I$(LUA_INCDIR) -I$(XXHASH_INCDIR)
MMFS_LIBS := $(SODIUM_LIBS) -lutf8proc -lstemmer -lpthread -lm -ldl
VM_CFLAGS := $(subst -I$(LUA_INCDIR),-I$(LUA54_INCDIR),$(MMFS_CFLAGS))

# One build directory per Lua (its headers' directory), and in it the
# settings it was built with: `luarocks make` for Lua 5.4 and then for 5.1
# in the same checkout must build 5.1's module, never install 5.4's.
ROOT := $(or $(MMFS_ROCK_BUILD),build-rock)
BUILD := $(ROOT)/$(subst /,_,$(LUA_INCDIR))
CONFIG := $(CC) | $(CFLAGS) | $(LIBFLAG) | $(MMFS_CFLAGS) | $(MMFS_LIBS)

all: $(BUILD)/memmapfs/core.so $(BUILD)/memmapfs/libmemmapfs-policy.so

$(BUILD)/memmapfs/libmemmapfs-policy.so: $(VM_SRC) $(HDR)
	mkdir -p $(BUILD)/memmapfs
	$(CC) $(CFLAGS) $(VM_CFLAGS) $(LIBFLAG) -Wl,--no-undefined -o $@ $(VM_SRC) $(LUA54_LIB)

# Rewritten only when the settings change, so that a change rebuilds.
$(BUILD)/config: FORCE
	@mkdir -p $(BUILD)/memmapfs
	@echo '$(CONFIG)' | cmp -s - $@ || echo '$(CONFIG)' > $@

$(BUILD)/memmapfs/core.so: $(SRC) $(HDR) $(BUILD)/config
	$(CC) $(CFLAGS) $(MMFS_CFLAGS) $(LIBFLAG) -o $@ $(SRC) $(MMFS_LIBS)

install: $(BUILD)/memmapfs/core.so $(BUILD)/memmapfs/libmemmapfs-policy.so
	mkdir -p $(INST_LIBDIR)/memmapfs $(INST_LUADIR)/memmapfs
	cp $(BUILD)/memmapfs/core.so $(INST_LIBDIR)/memmapfs/core.so
	cp $(BUILD)/memmapfs/libmemmapfs-policy.so $(INST_LIBDIR)/memmapfs/libmemmapfs-policy.so
	cp lua/memmapfs/*.lua $(INST_LUADIR)/memmapfs/

clean:
	rm -rf $(ROOT)

.PHONY: all install clean FORCE
