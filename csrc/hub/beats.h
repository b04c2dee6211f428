/* beats: what agents report in their heartbeats (the last one's time, the
 * agent and Kubernetes versions, the node count), kept in memory where
 * the control plane reads it (connectivityStatus, GET), and written to the
 * state store in the background.
 *
 * Why: a heartbeat used to rewrite the cluster's row with synchronous=FULL
 * on the event loop, so every agent's report stalled every connection of
 * the hub for an fsync. Now a heartbeat touches memory only; about every
 * flush interval the changed entries go to the store in one transaction
 * on a libuv worker thread (uv_queue_work), through its own SQLite
 * connection, as a JSON merge of just these members (store_merge), so
 * the write can race with no ARM PUT. A hub that is killed loses at most
 * one interval of reports, which the agents repeat anyway; a hub that
 * stops cleanly writes everything (beats_free). With a ":memory:" store
 * (tests) the flush runs on the loop. */
#ifndef CK_BEATS_H
#define CK_BEATS_H
#include <stdint.h>
#include <uv.h>

#include "list.h"
#include "store.h"

typedef struct beat {
    char key[1024];         /* the cluster's lowercased resource id (its store key) */
    int64_t last_heartbeat; /* unix seconds */
    char agent_version[65]; /* "" when not reported */
    char k8s_version[65];
    int nodes;                 /* -1 when not reported */
    unsigned gen, flushed_gen; /* changed since the last write while they differ */
    list_node node;
} beat;

typedef struct beats beats_t;

/* Returns NULL with a sentence in err. `s` stays the caller's; beats opens
 * a second connection to the same file for its worker. */
beats_t *beats_new(uv_loop_t *loop, store_t *s, unsigned flush_ms, char err[256]);
/* Writes what is still unwritten (on the calling thread), then frees.
 * Call after the loop has ended, before closing the store. */
void beats_free(beats_t *b);

/* The entry of a cluster, or NULL. */
beat *beats_find(beats_t *b, const char *key);
/* The entry of a cluster, created empty when missing; NULL when memory
 * ran out. After changing its fields, call beats_changed. */
beat *beats_touch(beats_t *b, const char *key);
void beats_changed(beats_t *b, beat *e);
/* Forgets a cluster (deleted, or created anew under a used name). */
void beats_drop(beats_t *b, const char *key);
/* Starts a background write when one is due and none is running. */
void beats_tick(beats_t *b, uint64_t now_ms);

#endif
