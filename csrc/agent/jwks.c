/* jwks: keys from --jwks-url. See jwks.h. */
#include "jwks.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define MAX_WAITERS 512
#define REFRESH_MS (3600u * 1000u)
#define MIN_GAP_MS 10000u

typedef struct waiter {
    jwks_cb cb;
    void *ud;
} waiter;

static struct {
    httpc_req *inflight;
    uint64_t last_ms;
    waiter w[MAX_WAITERS];
    size_t nw;
} J;

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static void wake_all(int ok)
{
    /* Callbacks may start new waits: take the list first. */
    waiter w[MAX_WAITERS];
    size_t n = J.nw;
    memcpy(w, J.w, n * sizeof *w);
    J.nw = 0;
    for (size_t i = 0; i < n; i++)
        w[i].cb(w[i].ud, ok);
}

static void on_keys(void *ud, int status, const char *body, size_t len, const char *err)
{
    agent_t *a = ud;
    J.inflight = NULL;
    J.last_ms = now_ms();
    int ok = 0;
    if (status == 200) {
        jwt_keyset ks;
        char perr[JWT_ERRLEN];
        if (jwt_keyset_parse(body, len, &ks, perr) > 0) {
            jwt_keyset_free(&a->keys);
            a->keys = ks;
            ok = 1;
            char n[16];
            snprintf(n, sizeof n, "%zu", ks.n);
            log_kv(LOG_INFO, "jwks.fetched", "url", a->cfg.jwks_url, "keys", n, NULL);
        } else {
            if (ks.keys)
                jwt_keyset_free(&ks);
            log_kv(LOG_WARN, "jwks.invalid", "url", a->cfg.jwks_url, "error", perr, NULL);
        }
    } else {
        char st[16];
        snprintf(st, sizeof st, "%d", status);
        if (status > 0)
            err = "not 200";
        log_kv(LOG_WARN, "jwks.fetch_failed", "url", a->cfg.jwks_url, "status", st, "error", err, NULL);
    }
    wake_all(ok);
}

static void fetch(agent_t *a)
{
    if (J.inflight)
        return;
    httpc_opts o = {.max_response = 1u << 20, .timeout_ms = 10000, .ca_file = a->cfg.jwks_ca};
    J.inflight = httpc_request(a->http, a->cfg.jwks_url, &o, on_keys, a);
    if (!J.inflight) {
        J.last_ms = now_ms();
        log_kv(LOG_ERROR, "jwks.url", "error", "invalid --jwks-url", NULL);
        wake_all(0);
    }
}

void jwks_start(agent_t *a)
{
    fetch(a);
}

void jwks_tick(agent_t *a)
{
    if (a->cfg.jwks_url && !J.inflight && now_ms() - J.last_ms > REFRESH_MS)
        fetch(a);
}

int jwks_refresh(agent_t *a, jwks_cb cb, void *ud)
{
    if (!a->cfg.jwks_url || J.nw == MAX_WAITERS)
        return -1;
    if (!J.inflight && J.last_ms && now_ms() - J.last_ms < MIN_GAP_MS)
        return -1; /* fetched a moment ago: the key really is unknown */
    J.w[J.nw++] = (waiter){cb, ud};
    fetch(a);
    return 0;
}

void jwks_forget(void *ud)
{
    for (size_t i = 0; i < J.nw; i++)
        if (J.w[i].ud == ud) {
            J.w[i] = J.w[--J.nw];
            i--;
        }
}

void jwks_stop(void)
{
    httpc_cancel(J.inflight);
    J.inflight = NULL;
    J.nw = 0;
}
