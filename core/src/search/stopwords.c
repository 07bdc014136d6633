/*
** stopwords.c: per-language stopword lists for OR queries.
**
** Owns: the lists and the test.  Only queries use them (query.c drops a
** stopword that is an optional clause beside other optional clauses), so
** a list can change without touching any index.  Measured on the LoCoMo
** dev split (docs/bench/recall.md): dropping these from OR queries raised
** recall@10 by about 0.05.  Only English has a list; other languages and
** the first tokenizer drop nothing.
**
** Invariant: each list is sorted (bytewise), for bsearch.
*/
#include "search.h"

#include <stdlib.h>

/* Function words of English questions and statements, folded, unstemmed. */
static const char *const ENGLISH[] = {
    "a",     "about", "after", "all",   "an",    "and",   "any",   "are",   "as",    "at",
    "be",    "been",  "before", "being", "by",   "can",   "could", "did",   "do",    "does",
    "during", "for",  "from",  "had",   "has",   "have",  "he",    "her",   "him",   "his",
    "how",   "i",     "if",    "in",    "into",  "is",    "it",    "its",   "me",    "my",
    "of",    "on",    "or",    "our",   "she",   "so",    "some",  "than",  "that",  "the",
    "their", "them",  "then",  "there", "they",  "this",  "to",    "was",   "we",    "were",
    "what",  "when",  "where", "which", "who",   "whom",  "why",   "will",  "with",  "would",
    "you",   "your",
};

static int cmp(const void *key, const void *elt) {
    return strcmp((const char *)key, *(const char *const *)elt);
}

const char *const *mmfs__stopwords(const char *lang, size_t *n) {
    if (lang && !strcmp(lang, "english")) {
        *n = sizeof ENGLISH / sizeof *ENGLISH;
        return ENGLISH;
    }
    *n = 0;
    return NULL;
}

int mmfs__is_stopword(const char *const *list, size_t n, const uint8_t *w, size_t len) {
    char key[MMFS__TOK_MAX + 1];
    if (!n || len > MMFS__TOK_MAX) return 0;
    memcpy(key, w, len);
    key[len] = 0;
    return bsearch(key, list, n, sizeof *list, cmp) != NULL;
}
