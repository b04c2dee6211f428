/* store: SQLite-backed documents. See store.h. */
#include "store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct store {
    sqlite3 *db;
    char *path;
    int copy_failed; /* the last store_get's callback refused its row */
};

static const char schema_v1[] = "CREATE TABLE IF NOT EXISTS docs ("
                                " id TEXT PRIMARY KEY NOT NULL,"
                                " type TEXT NOT NULL,"
                                " parent TEXT NOT NULL,"
                                " principal TEXT,"
                                " body TEXT NOT NULL,"
                                " secret TEXT);"
                                "CREATE INDEX IF NOT EXISTS docs_type_parent ON docs(type, parent);"
                                "CREATE INDEX IF NOT EXISTS docs_principal ON docs(principal);";

static int exec(store_t *s, const char *sql)
{
    return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

store_t *store_open(const char *path, char err[256])
{
    store_t *s = calloc(1, sizeof *s);
    if (s && !(s->path = strdup(path))) {
        free(s);
        s = NULL;
    }
    if (!s) {
        snprintf(err, 256, "out of memory");
        return NULL;
    }
    if (strcmp(path, ":memory:") != 0) {
        /* Create with 0600 ourselves: SQLite would honour the umask. */
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            snprintf(err, 256, "cannot open state database %s: %m", path);
            free(s->path);
            free(s);
            return NULL;
        }
        close(fd);
    }
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, 256, "cannot open state database %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "?");
        store_close(s);
        return NULL;
    }
    sqlite3_busy_timeout(s->db, 5000);
    sqlite3_stmt *st = NULL;
    int ver = -1;
    if (exec(s, "PRAGMA journal_mode=WAL") < 0 || exec(s, "PRAGMA synchronous=FULL") < 0 ||
        sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        snprintf(err, 256, "state database %s is not usable: %s", path, sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
        store_close(s);
        return NULL;
    }
    ver = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (ver > STORE_SCHEMA_VERSION) {
        snprintf(err, 256,
                 "state database %s has schema version %d; this arc-hub knows up to %d (upgrade arc-hub)",
                 path, ver, STORE_SCHEMA_VERSION);
        store_close(s);
        return NULL;
    }
    if (ver < 1) {
        /* Future migrations go here, one step per version, each in the
         * same transaction as its user_version bump. */
        char sql[1024];
        snprintf(sql, sizeof sql, "BEGIN IMMEDIATE;%sPRAGMA user_version=1;COMMIT;", schema_v1);
        if (exec(s, sql) < 0) {
            snprintf(err, 256, "cannot create the schema in %s: %s", path, sqlite3_errmsg(s->db));
            exec(s, "ROLLBACK");
            store_close(s);
            return NULL;
        }
    }
    return s;
}

void store_close(store_t *s)
{
    if (!s)
        return;
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

const char *store_error(store_t *s)
{
    return s->copy_failed ? "out of memory copying a row" : sqlite3_errmsg(s->db);
}

const char *store_path(store_t *s)
{
    return s->path;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

int store_put(store_t *s, const store_row *r)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(
            s->db, "INSERT OR REPLACE INTO docs(id,type,parent,principal,body,secret) VALUES(?,?,?,?,?,?)",
            -1, &st, NULL) != SQLITE_OK)
        return -1;
    bind_text(st, 1, r->id);
    bind_text(st, 2, r->type);
    bind_text(st, 3, r->parent ? r->parent : "");
    bind_text(st, 4, r->principal);
    bind_text(st, 5, r->body);
    bind_text(st, 6, r->secret);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int emit(sqlite3_stmt *st, store_cb cb, void *ud)
{
    store_row r = {
        .id = (const char *)sqlite3_column_text(st, 0),
        .type = (const char *)sqlite3_column_text(st, 1),
        .parent = (const char *)sqlite3_column_text(st, 2),
        .principal = (const char *)sqlite3_column_text(st, 3),
        .body = (const char *)sqlite3_column_text(st, 4),
        .secret = (const char *)sqlite3_column_text(st, 5),
    };
    return cb ? cb(ud, &r) : 0;
}

int store_get(store_t *s, const char *id, store_cb cb, void *ud)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT id,type,parent,principal,body,secret FROM docs WHERE id=?", -1, &st,
                           NULL) != SQLITE_OK)
        return -1;
    bind_text(st, 1, id);
    int rc = sqlite3_step(st), out = -1;
    s->copy_failed = 0;
    if (rc == SQLITE_ROW) {
        s->copy_failed = emit(st, cb, ud) != 0;
        out = s->copy_failed ? -1 : 1;
    } else if (rc == SQLITE_DONE) {
        out = 0;
    }
    sqlite3_finalize(st);
    return out;
}

int store_delete(store_t *s, const char *id)
{
    sqlite3_stmt *st = NULL;
    if (exec(s, "BEGIN IMMEDIATE") < 0)
        return -1;
    int changes = -1;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM docs WHERE id=?1 OR parent=?1", -1, &st, NULL) == SQLITE_OK) {
        bind_text(st, 1, id);
        if (sqlite3_step(st) == SQLITE_DONE)
            changes = sqlite3_changes(s->db);
    }
    sqlite3_finalize(st);
    if (changes < 0 || exec(s, "COMMIT") < 0) {
        exec(s, "ROLLBACK");
        return -1;
    }
    return changes > 0 ? 1 : 0;
}

int store_list(store_t *s, const char *type, const char *parent_prefix, const char *principal, store_cb cb,
               void *ud)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id,type,parent,principal,body,secret FROM docs WHERE type=?1"
                           " AND (?2 IS NULL OR substr(parent,1,length(?2))=?2)"
                           " AND (?3 IS NULL OR principal=?3) ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    bind_text(st, 1, type);
    bind_text(st, 2, parent_prefix);
    bind_text(st, 3, principal);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        n++;
        if (emit(st, cb, ud))
            break;
    }
    sqlite3_finalize(st);
    return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? n : -1;
}

int store_merge(store_t *s, const store_merge_item *items, size_t n)
{
    sqlite3_stmt *st = NULL;
    if (exec(s, "BEGIN IMMEDIATE") < 0)
        return -1;
    int ok = sqlite3_prepare_v2(
                 s->db,
                 "UPDATE docs SET body=CASE WHEN ?1 IS NULL THEN body ELSE json_patch(body,?1) END,"
                 " secret=CASE WHEN ?2 IS NULL THEN secret ELSE json_patch(coalesce(secret,'{}'),?2)"
                 " END WHERE id=?3",
                 -1, &st, NULL) == SQLITE_OK;
    for (size_t i = 0; ok && i < n; i++) {
        sqlite3_reset(st);
        bind_text(st, 1, items[i].body_patch);
        bind_text(st, 2, items[i].secret_patch);
        bind_text(st, 3, items[i].id);
        ok = sqlite3_step(st) == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    if (ok && exec(s, "COMMIT") == 0)
        return 0;
    exec(s, "ROLLBACK");
    return -1;
}
