/* jwks: the trusted issuer's keys fetched from a URL (--jwks-url), as
 * Entra and other OIDC providers publish them. Fetched at start, every
 * hour, and when a token names a key the agent does not have (at most
 * once per 10 s): requests holding such a token wait for the fetch rather
 * than getting a 401 during a key rotation. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "hcli.h"
#include "log.h"

#define MAX_WAITERS 512
#define REFRESH_MS (3600u * 1000u)
#define MIN_GAP_MS 10000u

typedef struct waiter {
    jwks_cb cb;
    void *ud;
} waiter;

static struct {
    hcli_t *inflight;
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
        log_kv(LOG_WARN, "jwks.fetch_failed", "url", a->cfg.jwks_url, "status", st, "error", err, NULL);
    }
    wake_all(ok);
}

static void fetch(agent_t *a)
{
    if (J.inflight)
        return;
    hcli_opts o = {.max_response = 1u << 20, .timeout_ms = 10000};
    J.inflight = hcli_request(a->loop, a->cfg.jwks_url, a->jwks_tls, "GET", NULL, NULL, 0, &o, on_keys, a);
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
