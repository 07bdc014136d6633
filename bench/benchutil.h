/*
** benchutil.h: what every benchmark program of bench/ shares: a monotonic
** clock, a thread CPU clock, resident-set figures, the result line format that bench/run
** parses, corpus reading, and bytes-on-disk of a directory.
**
** Result lines (stdout, one per measured figure, nothing else on stdout):
**
**   R <workload> <system> <metric> <value> <unit>
**
** Any other diagnostics go to stderr.  A program that cannot measure exits
** non-zero after printing "E <message>" to stderr, so bench/run can report
** the row as failed instead of inventing a number.
*/
#ifndef BENCHUTIL_H
#define BENCHUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Seconds from an arbitrary origin (CLOCK_MONOTONIC). */
double bu_now(void);

/* CPU seconds the calling thread has used (CLOCK_THREAD_CPUTIME_ID): user
** and system time of this thread only, not of other threads, not waiting. */
double bu_cpu_now(void);

/* Prints one result line (see above) and flushes stdout. */
void bu_result(const char *workload, const char *system, const char *metric, double value,
               const char *unit);

/* Prints "E <fmt...>" to stderr and exits with status 1. */
void bu_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Current resident set of this process in bytes: total and anonymous
** (heap, not file pages), from /proc/self/status.  0 when unknown. */
void bu_rss(uint64_t *total, uint64_t *anon);

/* Peak resident set of this process in bytes (getrusage ru_maxrss). */
uint64_t bu_peak_rss(void);

/* Bytes allocated on disk under PATH (sum of st_blocks * 512, like du),
** and the apparent size (sum of st_size) when APPARENT is not NULL. */
uint64_t bu_disk_bytes(const char *path, uint64_t *apparent);

/* Removes PATH recursively (rm -rf); missing is fine. */
void bu_rmtree(const char *path);

/* One line of memories.tsv split in place: "id \t tag,tag \t text". */
typedef struct bu_memline {
    char *text;
    size_t text_len;
    char *tags[8];
    size_t tag_len[8];
    size_t ntags;
} bu_memline;

/* Splits LINE (NUL-terminated, trailing newline allowed) in place.
** Returns 0, or -1 for a malformed line. */
int bu_parse_memline(char *line, bu_memline *m);

/* A corpus file read line by line with a fixed buffer, so that reading it
** adds next to nothing to the resident set of the measured process. */
typedef struct bu_lines {
    FILE *f;
    char *buf;
    size_t cap;
} bu_lines;

void bu_lines_open(bu_lines *l, const char *path);
/* The next line without its newline, or NULL at the end. */
char *bu_lines_next(bu_lines *l, size_t *len);
void bu_lines_close(bu_lines *l);

/* Loads the whole of a small file's lines (queries.tsv, the first lines of
** memories.tsv) into memory: at most MAX lines; *n gets the count. */
char **bu_load_lines(const char *path, size_t max, size_t *n);
void bu_free_lines(char **lines, size_t n);

/* The query words of a queries.tsv line ("qid \t w1 w2 w3") joined as
** "w1 OR w2 OR w3" into OUT (size CAP); a query that starts with a quote
** (W3's phrase set: "qid \t \"w1 w2\"") is copied as it is. */
void bu_or_query(const char *line, char *out, size_t cap);

/* splitmix64: the same random sequence in every program. */
uint64_t bu_rand(uint64_t *state);

/* KEYS: N random kv keys "key:%08ld" drawn from [0, NKEYS), 12 bytes each,
** packed without terminators; caller frees.  Deterministic. */
char *bu_random_keys(size_t n, long nkeys);
#define BU_KEYLEN 12

/* Sums the 64-bit words of P (LEN bytes) so reading cannot be optimised
** away; every reader of W0 and W7 consumes bytes through this. */
uint64_t bu_consume(const void *p, size_t len);

/* W1p: runs PROCS child processes at once.  Child I calls SETUP(I, UD) (open
** its store: not timed), then waits until every child is set up, then calls
** WORK(I, UD) and exits 0 (a child that fails exits non-zero through
** bu_die).  Returns the seconds from the moment all children were released
** until the last one exited; dies if any child failed. */
double bu_fork_run(int procs, void (*setup)(int i, void *ud), void (*work)(int i, void *ud), void *ud);
#endif
