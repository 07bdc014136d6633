/*
** main.c: the mmfs command line: parsing, help, opening stores, exit codes.
**
** Owns: `mmfs [--help | --version] COMMAND STORE [ARG...] [--OPTION...]`.
** Invariants: a mistake on the command line exits CLI_EXIT_USAGE before
** any store is opened; a failure of the library exits with the code of
** its status (cli.h), the message on stderr, nothing half-written on stdout
** that would look complete (output is line-buffered JSON or raw bytes).
*/
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_exit_code(int status) {
    switch (status) {
#define CLI__CASE(name, code) \
    case MMFS_##name: return code;
        CLI_EXIT_CODES(CLI__CASE)
#undef CLI__CASE
    default: return CLI_EXIT_UNKNOWN;
    }
}

const char *cli_opt_get(const cli_args *a, const char *name) {
    const char *v = NULL;
    for (int i = 0; i < a->nopts; i++)
        if (strcmp(a->opts[i].name, name) == 0) v = a->opts[i].value;
    return v;
}

int cli_opt_has(const cli_args *a, const char *name) {
    for (int i = 0; i < a->nopts; i++)
        if (strcmp(a->opts[i].name, name) == 0) return 1;
    return 0;
}

int cli_fail(const char *cmd, mmfs_db *db, int status) {
    fflush(stdout);
    fprintf(stderr, "mmfs %s: %s (%s)\n", cmd, mmfs_errmsg(db), mmfs_err_name(status));
    return cli_exit_code(status);
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "mmfs%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see mmfs %s%s--help)\n", cmd ? cmd : "", cmd ? " " : "");
    return CLI_EXIT_USAGE;
}

/* Reads the whole of PATH (a key: 16 to 64 bytes) into BUF. */
static int read_key(const char *cmd, const char *path, unsigned char *buf, size_t cap, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "mmfs %s: --key-file %s: %s (IO)\n", cmd, path, strerror(errno));
        return cli_exit_code(MMFS_IO);
    }
    size_t n = fread(buf, 1, cap, f);
    int more = fgetc(f) != EOF, err = ferror(f);
    fclose(f);
    if (err) {
        fprintf(stderr, "mmfs %s: --key-file %s: read error (IO)\n", cmd, path);
        return cli_exit_code(MMFS_IO);
    }
    if (more) return cli_usage_error(cmd, "--key-file %s: longer than %zu bytes", path, cap);
    *len = n;
    return 0;
}

int cli_open(const cli_args *a, int write, mmfs_db **db) {
    mmfs_options o;
    unsigned char key[64];
    mmfs_options_init(&o);
    o.readonly = !write;
    o.create = write && cli_opt_has(a, "create");
    const char *kf = cli_opt_get(a, "key-file");
    if (kf) {
        int rc = read_key(a->cmd, kf, key, sizeof key, &o.key_len);
        if (rc) return rc;
        o.key = key;
        o.checksum = MMFS_CHECKSUM_BLAKE2B;
    }
    o.compress = cli_opt_get(a, "compress"); /* NULL unless given (writing commands) */
    uint64_t ms = 0;
    int rc = cli_opt_u64(a, "lock-timeout", &ms);
    if (rc) return rc;
    if (cli_opt_get(a, "lock-timeout")) {
        if (ms > 3600000) return cli_usage_error(a->cmd, "--lock-timeout: at most 3600000 ms");
        o.lock_timeout_ms = (int)ms;
    }
    rc = mmfs_open(a->args[0], &o, db);
    memset(key, 0, sizeof key);
    if (rc == MMFS_NOTFOUND && write && !o.create) {
        fprintf(stderr, "mmfs %s: %s (NOTFOUND; --create makes a new store)\n", a->cmd, mmfs_errmsg(NULL));
        return cli_exit_code(rc);
    }
    if (rc) return cli_fail(a->cmd, NULL, rc);
    return 0;
}

int cli_close(const char *cmd, mmfs_db *db, int rc) {
    int st = mmfs_close(db);
    if (st) {
        int code = cli_fail(cmd, NULL, st);
        return rc ? rc : code;
    }
    /* Output that could not be written is a failure too (a full disk
    ** behind a redirect), not a silent truncation. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "mmfs %s: writing the output: %s (IO)\n", cmd, strerror(errno));
        return rc ? rc : cli_exit_code(MMFS_IO);
    }
    return rc;
}

static int parse_num(const cli_args *a, const char *name, int allow_neg, int64_t *out) {
    const char *v = cli_opt_get(a, name);
    if (!v) return 0;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno || (!allow_neg && x < 0))
        return cli_usage_error(a->cmd, "--%s: '%s' is not a%s integer", name, v,
                               allow_neg ? "n" : " non-negative");
    *out = x;
    return 0;
}

int cli_opt_u64(const cli_args *a, const char *name, uint64_t *out) {
    int64_t v = 0;
    int rc = parse_num(a, name, 0, &v);
    if (!rc && cli_opt_get(a, name)) *out = (uint64_t)v;
    return rc;
}

int cli_opt_i64(const cli_args *a, const char *name, int64_t *out) { return parse_num(a, name, 1, out); }

/* --------------------------------------------------------------- help */

static const char *const common_opts =
    "Options of every command:\n"
    "  --key-file FILE      the key of a keyed BLAKE2b store (16-64 bytes)\n"
    "  --help               this help\n";

static void print_overview(FILE *f) {
    fprintf(f, "usage: mmfs COMMAND STORE [ARG...] [OPTION...]\n"
               "       mmfs COMMAND --help | mmfs --help | mmfs --version\n\n"
               "A memmapfs store from the shell.  Commands that only read open the\n"
               "store read-only (no lock, nothing written).\n\nCommands:\n");
    for (const cli_command *c = cli_commands; c->name; c++) fprintf(f, "  %s\n", c->usage);
    fprintf(f, "\nExit status: 0 success, 1 NOTFOUND, 2 INVALID, 3 REJECTED, 4 CORRUPT,\n"
               "5 IO, 6 NOSPACE, 7 READONLY, 8 CLOSED, 9 BUSY, 10 LIMIT, 11 NOMEM,\n"
               "12 TIMEOUT, 64 bad command line, 70 an unknown library status.  See docs/cli.md.\n");
}

static void print_help(const cli_command *c) {
    printf("usage: mmfs %s\n\n%s\n%s", c->usage, c->help, common_opts);
}

static const cli_command *find_command(const char *name) {
    for (const cli_command *c = cli_commands; c->name; c++)
        if (strcmp(c->name, name) == 0) return c;
    return NULL;
}

/* Whether option NAME is allowed for C; *takes_value says if it has one. */
static int option_allowed(const cli_command *c, const char *name, size_t len, int *takes_value) {
    static const char *const global[] = {"key-file=", NULL};
    const char *const *lists[2] = {global, c->opts};
    for (int l = 0; l < 2; l++) {
        for (const char *const *o = lists[l]; o && *o; o++) {
            size_t n = strcspn(*o, "=");
            if (n == len && strncmp(*o, name, len) == 0) {
                *takes_value = (*o)[n] == '=';
                return 1;
            }
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_overview(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_overview(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("mmfs %s\n", MMFS_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0) {
        if (argc < 3) {
            print_overview(stdout);
            return 0;
        }
        const cli_command *c = find_command(argv[2]);
        if (!c) return cli_usage_error(NULL, "unknown command '%s'", argv[2]);
        print_help(c);
        return 0;
    }
    const cli_command *c = find_command(argv[1]);
    if (!c) return cli_usage_error(NULL, "unknown command '%s'", argv[1]);

    cli_args a;
    memset(&a, 0, sizeof a);
    a.cmd = c->name;
    int only_args = 0;
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        if (!only_args && strcmp(s, "--") == 0) {
            only_args = 1;
        } else if (!only_args && strncmp(s, "--", 2) == 0) {
            const char *name = s + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            int takes;
            if (len == 4 && strncmp(name, "help", 4) == 0) {
                print_help(c);
                return 0;
            }
            if (!option_allowed(c, name, len, &takes))
                return cli_usage_error(c->name, "unknown option '--%.*s'", (int)len, name);
            if (a.nopts == CLI_MAX_OPTS) return cli_usage_error(c->name, "too many options");
            cli_opt *o = &a.opts[a.nopts++];
            if (len >= sizeof o->name) return cli_usage_error(c->name, "option name too long");
            memcpy(o->name, name, len);
            o->name[len] = 0;
            if (takes) {
                if (eq) o->value = eq + 1;
                else if (i + 1 < argc) o->value = argv[++i];
                else return cli_usage_error(c->name, "--%s needs a value", o->name);
            } else if (eq) {
                return cli_usage_error(c->name, "--%s takes no value", o->name);
            }
        } else if (!only_args && s[0] == '-' && s[1] == 'h' && !s[2]) {
            print_help(c);
            return 0;
        } else {
            if (a.nargs == c->max_args || a.nargs == CLI_MAX_ARGS)
                return cli_usage_error(c->name, "too many arguments ('%s')", s);
            a.args[a.nargs++] = s;
        }
    }
    if (a.nargs < c->min_args) return cli_usage_error(c->name, "missing arguments: usage: mmfs %s", c->usage);
    return c->run(&a);
}
