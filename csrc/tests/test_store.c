/* Unit tests for store: round trips, listing filters, cascade delete,
 * persistence across reopen and refusal of a newer schema. */
#include <sqlite3.h>

#include "check.h"
#include "store.h"

static int tests_run;
static char path[256];

static int copy_body(void *ud, const store_row *r)
{
    snprintf(ud, 512, "%s|%s", r->body, r->secret ? r->secret : "-");
    return 0;
}

static int refuse_row(void *ud, const store_row *r)
{
    (void)ud, (void)r;
    return -1; /* as a copier does when memory runs out */
}

static int count_rows(void *ud, const store_row *r)
{
    (void)r;
    ++*(int *)ud;
    return 0;
}

static void roundtrip(void)
{
    char err[256], got[512];
    snprintf(path, sizeof path, "/tmp/ck-test-store-%d.db", (int)getpid());
    unlink(path);
    store_t *s = store_open(path, err);
    CHECK(s);
    store_row c = {"/subscriptions/s/resourcegroups/rg/providers/microsoft.kubernetes/connectedclusters/a",
                   "cc",
                   "/subscriptions/s/resourcegroups/rg",
                   NULL,
                   "{\"name\":\"A\"}",
                   "{\"key\":\"k\"}"};
    CHECK_EQ(store_put(s, &c), 0);
    store_row c2 = c;
    c2.id = "/subscriptions/s/resourcegroups/rg2/providers/microsoft.kubernetes/connectedclusters/b";
    c2.parent = "/subscriptions/s/resourcegroups/rg2";
    c2.secret = NULL;
    CHECK_EQ(store_put(s, &c2), 0);
    store_row ra = {"/ra/1", "ra", c.id, "alice", "{}", NULL};
    CHECK_EQ(store_put(s, &ra), 0);
    CHECK_EQ(store_get(s, c.id, copy_body, got), 1);
    CHECK_STR(got, "{\"name\":\"A\"}|{\"key\":\"k\"}");
    CHECK_EQ(store_get(s, "/nope", copy_body, got), 0);
    int n = 0;
    CHECK_EQ(store_list(s, "cc", "/subscriptions/s/", NULL, count_rows, &n), 2);
    n = 0;
    CHECK_EQ(store_list(s, "cc", "/subscriptions/s/resourcegroups/rg2", NULL, count_rows, &n), 1);
    CHECK_EQ(store_list(s, "ra", NULL, "alice", count_rows, &n), 1);
    CHECK_EQ(store_list(s, "ra", NULL, "bob", count_rows, &n), 0);
    /* Replacing keeps one row. */
    c.body = "{\"name\":\"A2\"}";
    CHECK_EQ(store_put(s, &c), 0);
    CHECK_EQ(store_list(s, "cc", NULL, NULL, NULL, NULL), 2);
    store_close(s);

    /* Everything acknowledged is there after reopening. */
    s = store_open(path, err);
    CHECK(s);
    CHECK_EQ(store_get(s, c.id, copy_body, got), 1);
    CHECK_STR(got, "{\"name\":\"A2\"}|{\"key\":\"k\"}");
    /* Deleting a cluster takes its scoped role assignments with it. */
    CHECK_EQ(store_delete(s, c.id), 1);
    CHECK_EQ(store_delete(s, c.id), 0);
    CHECK_EQ(store_get(s, "/ra/1", NULL, NULL), 0);
    CHECK_EQ(store_list(s, "cc", NULL, NULL, NULL, NULL), 1);
    /* A row the callback could not copy is an error, not "found". */
    CHECK_EQ(store_get(s, c2.id, refuse_row, NULL), -1);
    CHECK_STR(store_error(s), "out of memory copying a row");
    CHECK_EQ(store_get(s, c2.id, copy_body, got), 1);
    CHECK(strcmp(store_error(s), "out of memory copying a row") != 0);
    store_close(s);
}

static void newer_schema_refused(void)
{
    sqlite3 *db;
    CHECK_EQ(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_EQ(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    char err[256];
    CHECK(store_open(path, err) == NULL);
    CHECK(strstr(err, "schema version 99") != NULL);
    CHECK(store_open("/nonexistent-dir/x.db", err) == NULL);
    CHECK(strstr(err, "cannot open") != NULL);
    unlink(path);
    char side[300];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

int main(void)
{
    TEST(roundtrip);
    TEST(newer_schema_refused);
    TEST_MAIN_END();
}
