/* beats: agents' reports in memory, written in the background. See
 * beats.h. */
#include "beats.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

struct beats {
    uv_loop_t *loop;
    store_t *s;      /* the loop thread's */
    store_t *worker; /* the worker thread's own connection, or NULL: flush on the loop */
    unsigned flush_ms;
    uint64_t next_ms;
    list_node all;
    /* One write at a time: the items being written, owned by the work
     * request until its after-callback. */
    uv_work_t work;
    int busy;
    store_merge_item *items;
    unsigned *gens;
    size_t nitems;
    int result;
};

beats_t *beats_new(uv_loop_t *loop, store_t *s, unsigned flush_ms, char err[256])
{
    beats_t *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, 256, "out of memory");
        return NULL;
    }
    b->loop = loop;
    b->s = s;
    b->flush_ms = flush_ms ? flush_ms : 1000;
    list_init(&b->all);
    const char *path = store_path(s);
    if (strcmp(path, ":memory:") != 0 && !(b->worker = store_open(path, err))) {
        free(b);
        return NULL;
    }
    return b;
}

beat *beats_find(beats_t *b, const char *key)
{
    list_node *p, *t;
    list_foreach (p, t, &b->all) {
        beat *e = list_entry(p, beat, node);
        if (!strcmp(e->key, key))
            return e;
    }
    return NULL;
}

beat *beats_touch(beats_t *b, const char *key)
{
    beat *e = beats_find(b, key);
    if (e)
        return e;
    if (strlen(key) >= sizeof e->key || !(e = calloc(1, sizeof *e)))
        return NULL;
    snprintf(e->key, sizeof e->key, "%s", key);
    e->nodes = -1;
    list_insert_tail(&b->all, &e->node);
    return e;
}

void beats_changed(beats_t *b, beat *e)
{
    (void)b;
    e->gen++;
    if (e->gen == e->flushed_gen) /* wrapped onto the written mark: stay unwritten */
        e->gen++;
}

void beats_drop(beats_t *b, const char *key)
{
    beat *e = beats_find(b, key);
    if (e) {
        list_remove(&e->node);
        free(e);
    }
}

/* The JSON merge patches of one entry; 0, or -1 when memory ran out. */
static int patches(const beat *e, store_merge_item *it)
{
    char when[32];
    time_t t = (time_t)e->last_heartbeat;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON *body = cJSON_CreateObject(), *props = cJSON_AddObjectToObject(body, "properties");
    cJSON_AddStringToObject(props, "lastConnectivityTime", when);
    if (e->agent_version[0])
        cJSON_AddStringToObject(props, "agentVersion", e->agent_version);
    if (e->k8s_version[0])
        cJSON_AddStringToObject(props, "kubernetesVersion", e->k8s_version);
    if (e->nodes >= 0)
        cJSON_AddNumberToObject(props, "totalNodeCount", e->nodes);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(props, "arcAgentProfile"), "agentState", "Succeeded");
    cJSON *sec = cJSON_CreateObject();
    cJSON_AddNumberToObject(sec, "lastHeartbeat", (double)e->last_heartbeat);
    /* A patch that lost a member would merge less than it says; the
     * entry then simply stays unwritten. */
    it->id = strdup(e->key);
    it->body_patch = cJSON_PrintUnformatted(body);
    it->secret_patch = cJSON_PrintUnformatted(sec);
    int complete = cJSON_GetObjectItemCaseSensitive(props, "arcAgentProfile") &&
                   cJSON_GetObjectItemCaseSensitive(props, "lastConnectivityTime") &&
                   cJSON_GetObjectItemCaseSensitive(sec, "lastHeartbeat");
    cJSON_Delete(body);
    cJSON_Delete(sec);
    return it->id && it->body_patch && it->secret_patch && complete ? 0 : -1;
}

static void free_items(beats_t *b)
{
    for (size_t i = 0; i < b->nitems; i++) {
        free((char *)b->items[i].id);
        free((char *)b->items[i].body_patch);
        free((char *)b->items[i].secret_patch);
    }
    free(b->items);
    free(b->gens);
    b->items = NULL;
    b->gens = NULL;
    b->nitems = 0;
}

/* Copies the unwritten entries into b->items; returns how many. */
static size_t snapshot(beats_t *b)
{
    size_t n = 0;
    list_node *p, *t;
    list_foreach (p, t, &b->all)
        if (list_entry(p, beat, node)->gen != list_entry(p, beat, node)->flushed_gen)
            n++;
    if (!n)
        return 0;
    b->items = calloc(n, sizeof *b->items);
    b->gens = calloc(n, sizeof *b->gens);
    if (!b->items || !b->gens) {
        free_items(b);
        return 0;
    }
    list_foreach (p, t, &b->all) {
        beat *e = list_entry(p, beat, node);
        if (e->gen == e->flushed_gen)
            continue;
        store_merge_item *it = &b->items[b->nitems];
        b->gens[b->nitems] = e->gen;
        b->nitems++; /* counted before patches() so that free_items frees a half-made item */
        if (patches(e, it) < 0) {
            free_items(b);
            return 0;
        }
    }
    return b->nitems;
}

/* Marks what was written as written, unless it changed meanwhile. */
static void settle(beats_t *b)
{
    if (b->result < 0) {
        log_kv(LOG_WARN, "arm.heartbeat_write_failed", "error", store_error(b->worker ? b->worker : b->s),
               NULL);
    } else {
        for (size_t i = 0; i < b->nitems; i++) {
            beat *e = beats_find(b, b->items[i].id);
            if (e && e->gen == b->gens[i])
                e->flushed_gen = e->gen;
        }
    }
    free_items(b);
}

static void work_cb(uv_work_t *w)
{
    beats_t *b = w->data;
    b->result = store_merge(b->worker, b->items, b->nitems);
}

static void after_cb(uv_work_t *w, int status)
{
    beats_t *b = w->data;
    if (status < 0) /* cancelled: nothing ran */
        b->result = -1;
    settle(b);
    b->busy = 0;
}

void beats_tick(beats_t *b, uint64_t now_ms)
{
    if (b->busy || now_ms < b->next_ms)
        return;
    b->next_ms = now_ms + b->flush_ms;
    if (!snapshot(b))
        return;
    if (!b->worker) {
        b->result = store_merge(b->s, b->items, b->nitems);
        settle(b);
        return;
    }
    b->work.data = b;
    b->busy = 1;
    if (uv_queue_work(b->loop, &b->work, work_cb, after_cb) != 0) {
        b->busy = 0;
        b->result = -1;
        settle(b);
    }
}

void beats_free(beats_t *b)
{
    if (!b)
        return;
    if (!b->busy && snapshot(b)) {
        b->result = store_merge(b->worker ? b->worker : b->s, b->items, b->nitems);
        settle(b);
    }
    list_node *p, *t;
    list_foreach (p, t, &b->all) {
        list_remove(p);
        free(list_entry(p, beat, node));
    }
    store_close(b->worker);
    free(b);
}
