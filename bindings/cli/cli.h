/*
** cli.h: what the parts of the mmfs command-line tool share.
**
** Owns: the exit codes (one table, so scripts and docs/cli.md agree), the
** parsed command line, the JSON writer's interface.
** Invariants: the tool uses memmapfs.h only, never the engine's internals;
** a command that does not write opens the store read-only.
*/
#ifndef MMFS_CLI_H
#define MMFS_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "memmapfs.h"

/* Exit codes, spelled out (not derived from the enum's order) because
** scripts depend on them: docs/cli.md lists the same table. */
#define CLI_EXIT_CODES(X)  \
    X(OK, 0)               \
    X(NOTFOUND, 1)         \
    X(INVALID, 2)          \
    X(REJECTED, 3)         \
    X(CORRUPT, 4)          \
    X(IO, 5)               \
    X(NOSPACE, 6)          \
    X(READONLY, 7)         \
    X(CLOSED, 8)           \
    X(BUSY, 9)             \
    X(LIMIT, 10)           \
    X(NOMEM, 11)           \
    X(TIMEOUT, 12)

#define CLI_EXIT_USAGE 64   /* bad command line (as sysexits' EX_USAGE) */
#define CLI_EXIT_UNKNOWN 70 /* a status this tool does not know (EX_SOFTWARE) */

/* The exit code for a library status. */
int cli_exit_code(int status);

/* A parsed command line: positional arguments and options.  Options may
** come anywhere after the command; "--" ends them. */
#define CLI_MAX_ARGS 8
#define CLI_MAX_OPTS 32

typedef struct cli_opt {
    char name[24];     /* without the leading "--" (known names are short) */
    const char *value; /* NULL for a flag */
} cli_opt;

typedef struct cli_args {
    const char *cmd;
    int nargs;
    const char *args[CLI_MAX_ARGS];
    int nopts;
    cli_opt opts[CLI_MAX_OPTS];
} cli_args;

/* The last value of option NAME, or NULL when absent. */
const char *cli_opt_get(const cli_args *a, const char *name);

/* Whether flag NAME is present. */
int cli_opt_has(const cli_args *a, const char *name);

/* Reports a failed library call: "mmfs CMD: message (CODE)" on stderr;
** returns the exit code for STATUS. */
int cli_fail(const char *cmd, mmfs_db *db, int status);

/* Reports a command-line mistake on stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Opens the store named by the first argument: read-only unless WRITE;
** a writing command creates a missing store only with --create.  Reads
** --key-file.  On failure reports it and returns the exit code, else 0. */
int cli_open(const cli_args *a, int write, mmfs_db **db);

/* Closes DB; a failure (the final sync of a writing command) is reported
** and turned into an exit code, else RC is returned unchanged. */
int cli_close(const char *cmd, mmfs_db *db, int rc);

/* Parses a non-negative decimal integer option; 0 on success, else a
** usage error's exit code (reported). */
int cli_opt_u64(const cli_args *a, const char *name, uint64_t *out);
int cli_opt_i64(const cli_args *a, const char *name, int64_t *out);

/* --------------------------------------------------------------- JSON */

/* Bytes as a JSON value: a string when they are valid UTF-8 (with '"',
** '\\' and control characters escaped), else {"base64":"..."}. */
void cli_json_bytes(FILE *f, const void *p, size_t n);
void cli_json_slice(FILE *f, mmfs_slice s);

/* A session as one flat object (id, intent_id, created_at, payload, then
** its other fields), like get_session's table in Lua. */
void cli_json_session(FILE *f, const mmfs_session *s);

/* A memory as one object; SCORE is written when WITH_SCORE. */
void cli_json_memory(FILE *f, const mmfs_memory *m, int with_score);

/* A finite double ("null" for NaN and infinities, which JSON lacks). */
void cli_json_double(FILE *f, double d);

/* ----------------------------------------------------------- commands */

typedef int (*cli_cmd_fn)(const cli_args *a);

typedef struct cli_command {
    const char *name;
    cli_cmd_fn run;
    int min_args, max_args;  /* positional arguments, the store included */
    const char *const *opts; /* allowed options; "name=" takes a value */
    const char *usage;       /* one line */
    const char *help;        /* the rest of `mmfs CMD --help` */
} cli_command;

extern const cli_command cli_commands[];

#endif /* MMFS_CLI_H */
