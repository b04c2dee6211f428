/* Unit tests for beats (with the real store on a file): reports stay in
 * memory until a tick writes them on a worker thread, the write merges
 * only the reported members into the row (an ARM change made meanwhile
 * survives), an entry changed while its write ran stays unwritten, a
 * dropped entry is forgotten, and beats_free writes what is left. Also
 * store_merge itself: rows that do not exist are skipped. */
#include <cjson/cJSON.h>

#include "beats.h"
#include "check.h"
#include "store.h"

static int tests_run;
static char path[256];

#define KEY "/subscriptions/s/resourcegroups/rg/providers/microsoft.kubernetes/connectedclusters/a"

static int copy_row(void *ud, const store_row *r)
{
    snprintf(ud, 2048, "%s|%s", r->body, r->secret ? r->secret : "-");
    return 0;
}

/* The stored row as "body|secret". */
static void row(store_t *s, char out[2048])
{
    out[0] = '\0';
    CHECK_EQ(store_get(s, KEY, copy_row, out), 1);
}

static store_t *fresh(void)
{
    char err[256];
    snprintf(path, sizeof path, "/tmp/ck-test-beats-%d.db", (int)getpid());
    unlink(path);
    store_t *s = store_open(path, err);
    CHECK(s);
    store_row r = {KEY,
                   "cc",
                   "/subscriptions/s/resourcegroups/rg",
                   NULL,
                   "{\"name\":\"a\",\"properties\":{\"distribution\":\"k3s\"}}",
                   "{\"hc\":\"h1\"}"};
    CHECK_EQ(store_put(s, &r), 0);
    return s;
}

/* Runs the loop until the write a tick started has settled. */
static void tick_and_wait(uv_loop_t *loop, beats_t *b, uint64_t now)
{
    beats_tick(b, now);
    uv_run(loop, UV_RUN_DEFAULT); /* the work request is the only thing alive */
}

static void written_in_background(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    store_t *s = fresh();
    char err[256], got[2048];
    beats_t *b = beats_new(&loop, s, 1000, err);
    CHECK(b);
    CHECK(beats_find(b, KEY) == NULL);
    beat *e = beats_touch(b, KEY);
    CHECK(e && beats_find(b, KEY) == e);
    e->last_heartbeat = 1700000000;
    snprintf(e->agent_version, sizeof e->agent_version, "0.1.0");
    e->nodes = 3;
    beats_changed(b, e);
    /* In memory only until a tick. */
    row(s, got);
    CHECK(strstr(got, "agentVersion") == NULL);
    /* Meanwhile an ARM write changes another member of the row. */
    store_row r = {KEY,
                   "cc",
                   "/subscriptions/s/resourcegroups/rg",
                   NULL,
                   "{\"name\":\"a\",\"tags\":{\"t\":\"1\"},\"properties\":{\"distribution\":\"k3s\"}}",
                   "{\"hc\":\"h1\"}"};
    CHECK_EQ(store_put(s, &r), 0);
    tick_and_wait(&loop, b, 5000);
    row(s, got);
    char *bar = strchr(got, '|');
    CHECK(bar);
    *bar = '\0';
    cJSON *body = cJSON_Parse(got), *sec = cJSON_Parse(bar + 1);
    cJSON *props = cJSON_GetObjectItemCaseSensitive(body, "properties");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(props, "agentVersion")->valuestring, "0.1.0");
    CHECK_EQ(cJSON_GetObjectItemCaseSensitive(props, "totalNodeCount")->valueint, 3);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(props, "lastConnectivityTime")->valuestring,
              "2023-11-14T22:13:20Z");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(props, "distribution")->valuestring, "k3s");
    CHECK(cJSON_GetObjectItemCaseSensitive(props, "kubernetesVersion") == NULL); /* never reported */
    CHECK_STR(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(body, "tags"), "t")->valuestring,
        "1");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(props, "arcAgentProfile"),
                                               "agentState")
                  ->valuestring,
              "Succeeded");
    CHECK_EQ((long long)cJSON_GetObjectItemCaseSensitive(sec, "lastHeartbeat")->valuedouble, 1700000000);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(sec, "hc")->valuestring, "h1");
    cJSON_Delete(body);
    cJSON_Delete(sec);
    CHECK(e->gen == e->flushed_gen);

    /* Nothing new: a later tick writes nothing (the row keeps a change
     * made behind beats' back). */
    store_row r2 = r;
    r2.secret = "{\"hc\":\"h1\",\"lastHeartbeat\":5}";
    CHECK_EQ(store_put(s, &r2), 0);
    tick_and_wait(&loop, b, 10000);
    row(s, got);
    CHECK(strstr(got, "\"lastHeartbeat\":5") != NULL);

    /* Not due yet: the interval has not passed since the last write. */
    e->last_heartbeat = 1700000060;
    beats_changed(b, e);
    tick_and_wait(&loop, b, 10500);
    row(s, got);
    CHECK(strstr(got, "\"lastHeartbeat\":5") != NULL);
    CHECK(e->gen != e->flushed_gen);

    /* beats_free writes what is left. */
    beats_free(b);
    row(s, got);
    CHECK(strstr(got, "\"lastHeartbeat\":1700000060") != NULL);
    store_close(s);
    CHECK_EQ(uv_loop_close(&loop), 0);
    unlink(path);
}

static void changed_while_writing(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    store_t *s = fresh();
    char err[256], got[2048];
    beats_t *b = beats_new(&loop, s, 1000, err);
    CHECK(b);
    beat *e = beats_touch(b, KEY);
    e->last_heartbeat = 100;
    beats_changed(b, e);
    beats_tick(b, 5000); /* the write is queued; the entry changes before it settles */
    e->last_heartbeat = 200;
    beats_changed(b, e);
    uv_run(&loop, UV_RUN_DEFAULT);
    row(s, got);
    CHECK(strstr(got, "\"lastHeartbeat\":100") != NULL);
    CHECK(e->gen != e->flushed_gen); /* 200 is still to be written */
    tick_and_wait(&loop, b, 7000);
    row(s, got);
    CHECK(strstr(got, "\"lastHeartbeat\":200") != NULL);
    CHECK(e->gen == e->flushed_gen);

    /* A dropped entry is gone and is not written. */
    e->last_heartbeat = 300;
    beats_changed(b, e);
    beats_drop(b, KEY);
    CHECK(beats_find(b, KEY) == NULL);
    beats_free(b);
    row(s, got);
    CHECK(strstr(got, "\"lastHeartbeat\":200") != NULL);
    store_close(s);
    CHECK_EQ(uv_loop_close(&loop), 0);
    unlink(path);
}

static void merge_skips_missing_rows(void)
{
    store_t *s = fresh();
    char got[2048];
    store_merge_item items[] = {
        {"/no/such/row", "{\"x\":1}", NULL                   },
        {KEY,            NULL,        "{\"lastHeartbeat\":7}"},
    };
    CHECK_EQ(store_merge(s, items, 2), 0);
    row(s, got);
    CHECK_STR(
        got,
        "{\"name\":\"a\",\"properties\":{\"distribution\":\"k3s\"}}|{\"hc\":\"h1\",\"lastHeartbeat\":7}");
    CHECK_EQ(store_get(s, "/no/such/row", copy_row, got), 0);
    /* Not JSON: the whole batch is refused, the row unchanged. */
    store_merge_item bad[] = {
        {KEY, "{\"y\":2}", NULL},
        {KEY, "not json",  NULL},
    };
    CHECK_EQ(store_merge(s, bad, 2), -1);
    row(s, got);
    CHECK(strstr(got, "\"y\"") == NULL);
    store_close(s);
    unlink(path);
}

int main(void)
{
    TEST(written_in_background);
    TEST(changed_while_writing);
    TEST(merge_skips_missing_rows);
    TEST_MAIN_END();
}
