/* store: arc-hub's durable state in SQLite (the embedded default).
 *
 * One table of ARM-shaped documents keyed by their lowercased resource id
 * (ARM ids are case-insensitive), with the columns the hub queries by:
 * type, the parent id (resource group, or the scope of a role
 * assignment) and, for role assignments, the principal. A second column
 * holds what must never be returned by GET (relay keys), kept apart from
 * the body so no serialisation path can leak it.
 *
 * Durability: WAL with synchronous=FULL, so a write that returned has been
 * fsync'd and survives a SIGKILL or power loss; every change is one
 * transaction. The schema version lives in PRAGMA user_version: opening a
 * database written by a newer hub is refused rather than guessed at. */
#ifndef CK_STORE_H
#define CK_STORE_H
#include <stddef.h>

#define STORE_SCHEMA_VERSION 1

typedef struct store store_t;

typedef struct store_row {
    const char *id;   /* lowercased key */
    const char *type; /* e.g. "microsoft.kubernetes/connectedclusters" */
    const char *parent;
    const char *principal; /* may be NULL */
    const char *body;      /* JSON */
    const char *secret;    /* JSON or NULL; never served */
} store_row;

/* Opens (creating if missing, mode 0600) and migrates. ":memory:" works
 * for tests. Returns NULL with a sentence in err. */
store_t *store_open(const char *path, char err[256]);
void store_close(store_t *s);

/* Inserts or replaces row->id. Returns 0 or -1. */
int store_put(store_t *s, const store_row *row);
/* Calls cb with the row (valid during the call). Returns 1 found, 0 not
 * found, -1 error, also when cb returns non-zero (it could not copy the
 * row; store_error then says so). */
typedef int (*store_cb)(void *ud, const store_row *row);
int store_get(store_t *s, const char *id, store_cb cb, void *ud);
/* Returns 1 deleted, 0 not found, -1 error. Deleting also removes rows
 * whose parent is `id` (role assignments scoped to a deleted cluster). */
int store_delete(store_t *s, const char *id);
/* Every row of `type` whose parent starts with parent_prefix (NULL: any)
 * and whose principal equals `principal` (NULL: any), ordered by id. cb
 * returning non-zero stops the walk. Returns rows visited or -1. */
int store_list(store_t *s, const char *type, const char *parent_prefix, const char *principal, store_cb cb,
               void *ud);
/* Merges JSON into stored rows (RFC 7396, SQLite's json_patch): for each
 * item whose row exists, body := merge(body, body_patch) and secret :=
 * merge(secret, secret_patch) (a NULL patch leaves that column alone);
 * rows that do not exist are skipped. One transaction for all items, so
 * a crash keeps all or none. Only changes the named members, so it cannot
 * undo a store_put that ran since the caller looked. Returns 0 or -1. */
typedef struct store_merge_item {
    const char *id;
    const char *body_patch, *secret_patch;
} store_merge_item;
int store_merge(store_t *s, const store_merge_item *items, size_t n);
/* The path store_open was given (":memory:" cannot be opened twice). */
const char *store_path(store_t *s);
/* The last SQLite error, for logs. */
const char *store_error(store_t *s);

#endif
