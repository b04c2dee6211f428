/* channel: the agent's listener control channels. Each dials
 * wss://relay/$hc/<hc>?sb-hc-action=listen with a Listen SAS token,
 * renews that token before it expires, pings when idle, and reconnects
 * with jittered exponential backoff (0, 1, 2, 5, 10, 30 s as Microsoft's
 * listeners do). Several channels keep the cluster reachable while one
 * reconnects. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "enc.h"
#include "json.h"
#include "log.h"
#include "sas.h"
#include "ws.h"
#include "wsc.h"

typedef struct channel {
    agent_t *a;
    int idx;
    wsc_t *w;
    int up;
    int attempt;
    int64_t token_exp;
    uint64_t retry_at;
} channel;

static const unsigned backoff_s[] = {0, 1, 2, 5, 10, 30};

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static long make_token(agent_t *a, int64_t exp, char *out, size_t cap)
{
    if (a->hub_mode) {
        /* Registered mode: the hub's latest Listen token (reg.c). */
        size_t n = strlen(a->hub_token);
        if (!n || n >= cap)
            return -1;
        memcpy(out, a->hub_token, n + 1);
        return (long)n;
    }
    /* The resource names the relay host without port, as the SDKs do. */
    char resource[1024];
    const char *h = strstr(a->cfg.relay, "://");
    h = h ? h + 3 : a->cfg.relay;
    size_t hl = strcspn(h, ":/");
    snprintf(resource, sizeof resource, "http://%.*s/%s", (int)hl, h, a->cfg.hc);
    return sas_create(resource, a->cfg.key_name, a->cfg.key, exp, out, cap);
}

static void schedule_retry(channel *ch)
{
    int i = ch->attempt < 6 ? ch->attempt : 5;
    unsigned base = backoff_s[i] * 1000;
    uint8_t r;
    enc_random(&r, 1);
    /* +/-20 % jitter so that many agents do not reconnect in lockstep. */
    uint64_t delay = base ? base * 8 / 10 + (base * 4 / 10) * r / 255 : 0;
    ch->retry_at = now_ms() + delay;
    ch->attempt++;
}

static void on_open(wsc_t *w, int status, int http_status, const char *reason)
{
    channel *ch = wsc_data(w);
    agent_t *a = ch->a;
    char idx[8], st[8];
    snprintf(idx, sizeof idx, "%d", ch->idx);
    snprintf(st, sizeof st, "%d", http_status);
    if (status == 0) {
        ch->up = 1;
        ch->attempt = 0;
        a->channels_up++;
        log_kv(LOG_INFO, "channel.up", "channel", idx, "hc", a->cfg.hc, NULL);
        return;
    }
    ch->w = NULL;
    log_kv(LOG_WARN, "channel.refused", "channel", idx, "status", st, "reason", reason, NULL);
    if (!a->stopping && !(a->hub_mode && !a->cluster_connect))
        schedule_retry(ch);
}

static void on_message(wsc_t *w, int op, const uint8_t *data, size_t len)
{
    channel *ch = wsc_data(w);
    if (op != WS_OP_TEXT)
        return;
    cJSON *m = cJSON_ParseWithLength((const char *)data, len);
    const cJSON *acc = m ? cJSON_GetObjectItemCaseSensitive(m, "accept") : NULL;
    const cJSON *addr = acc ? cJSON_GetObjectItemCaseSensitive(acc, "address") : NULL;
    if (cJSON_IsString(addr) && ch->a->on_accept)
        ch->a->on_accept(ch->a, addr->valuestring);
    else
        log_kv(LOG_DEBUG, "channel.ignored_message", NULL);
    cJSON_Delete(m);
}

static void on_close(wsc_t *w, int code, const char *reason)
{
    channel *ch = wsc_data(w);
    agent_t *a = ch->a;
    char idx[8], cs[8];
    snprintf(idx, sizeof idx, "%d", ch->idx);
    snprintf(cs, sizeof cs, "%d", code);
    if (ch->up)
        a->channels_up--;
    ch->up = 0;
    ch->w = NULL;
    log_kv(LOG_WARN, "channel.down", "channel", idx, "code", cs, "reason", reason, NULL);
    if (!a->stopping && !(a->hub_mode && !a->cluster_connect))
        schedule_retry(ch);
}

static const wsc_cbs chan_cbs = {.on_open = on_open, .on_message = on_message, .on_close = on_close};

static void dial(channel *ch)
{
    agent_t *a = ch->a;
    char tok[SAS_MAX_TOKEN], hdr[SAS_MAX_TOKEN + 32], url[2048];
    ch->token_exp = a->hub_mode ? a->hub_token_exp : (int64_t)time(NULL) + a->cfg.token_ttl;
    if (make_token(a, ch->token_exp, tok, sizeof tok) < 0) {
        log_kv(LOG_ERROR, "channel.token", "error", "cannot build the listen token (name or key too long)",
               NULL);
        return;
    }
    snprintf(hdr, sizeof hdr, "ServiceBusAuthorization: %s", tok);
    snprintf(url, sizeof url, "%s/$hc/%s?sb-hc-action=listen&sb-hc-id=agent-%d", a->cfg.relay, a->cfg.hc,
             ch->idx);
    const char *hdrs[] = {hdr, NULL};
    wsc_opts o = {.stream = 0, .max_message = 64 * 1024, .via = a->http};
    o.conn = conn_default_opts;
    ch->w = wsc_connect(a->loop, url, a->relay_tls, hdrs, &chan_cbs, ch, &o);
    ch->retry_at = 0;
    if (!ch->w) {
        log_kv(LOG_ERROR, "channel.url", "error", "invalid relay URL", NULL);
        schedule_retry(ch);
    }
}

int channel_start_all(agent_t *a)
{
    a->chans = calloc((size_t)a->cfg.channels, sizeof(channel));
    if (!a->chans)
        return -1;
    a->channels_started = 1;
    for (int i = 0; i < a->cfg.channels; i++) {
        a->chans[i].a = a;
        a->chans[i].idx = i;
        dial(&a->chans[i]);
    }
    return 0;
}

void channel_tick(agent_t *a)
{
    uint64_t now = now_ms();
    int64_t wall = (int64_t)time(NULL);
    for (int i = 0; i < a->cfg.channels; i++) {
        channel *ch = &a->chans[i];
        if (!ch->w) {
            if (ch->retry_at && now >= ch->retry_at)
                dial(ch);
            continue;
        }
        if (!ch->up)
            continue;
        /* Renew 5 minutes before expiry, or at 3/4 of a short lifetime;
         * in registered mode once the hub has handed out a newer token. */
        int64_t margin = a->cfg.token_ttl > 1200 ? 300 : a->cfg.token_ttl / 4;
        if (a->hub_mode)
            margin = a->hub_token_exp > ch->token_exp ? 300 : -1000000;
        if (wall >= ch->token_exp - margin) {
            char tok[SAS_MAX_TOKEN];
            int64_t exp = a->hub_mode ? a->hub_token_exp : wall + a->cfg.token_ttl;
            if (make_token(a, exp, tok, sizeof tok) > 0) {
                /* A renewToken without its token would make the relay close
                 * the channel: only a complete message is sent. */
                unsigned mark = json_failures();
                cJSON *m = cJSON_CreateObject();
                cJSON_AddStringToObject(cJSON_AddObjectToObject(m, "renewToken"), "token", tok);
                char *s = json_print(m, mark, 0);
                cJSON_Delete(m);
                int built = s != NULL, rc = built ? wsc_send(ch->w, WS_OP_TEXT, s, strlen(s)) : -1;
                free(s);
                if (rc == 0) {
                    ch->token_exp = exp;
                    log_kv(LOG_INFO, "channel.renewed", NULL);
                } else if (!built) {
                    log_kv(LOG_WARN, "channel.renew_failed", "error", "out of memory; retrying", NULL);
                } else {
                    /* wsc_send dropped the channel; on_close reconnects. */
                    log_kv(LOG_WARN, "channel.renew_failed", "error", "cannot write to the channel", NULL);
                    continue;
                }
            }
        }
        uint64_t idle = wsc_idle_ms(ch->w);
        if (idle > 3ull * a->cfg.ping_ms) {
            log_kv(LOG_WARN, "channel.dead", "reason", "no traffic or pong", NULL);
            wsc_abort(ch->w); /* on_close reconnects */
        } else if (idle > a->cfg.ping_ms && wsc_ping(ch->w) < 0) {
            log_kv(LOG_WARN, "channel.ping_failed", "reason", "cannot write to the channel", NULL);
            /* wsc_send dropped the channel; on_close reconnects. */
        }
    }
}

void channel_stop_all(agent_t *a)
{
    a->stopping = 1;
    for (int i = 0; a->chans && i < a->cfg.channels; i++) /* none in registered mode until cluster-connect */
        if (a->chans[i].w)
            wsc_close(a->chans[i].w, WS_CLOSE_GOING_AWAY, "agent stopping");
}

void channel_pause_all(agent_t *a)
{
    for (int i = 0; a->chans && i < a->cfg.channels; i++) {
        a->chans[i].retry_at = 0;
        if (a->chans[i].w)
            wsc_close(a->chans[i].w, WS_CLOSE_GOING_AWAY, "cluster-connect disabled");
    }
}

void channel_resume_all(agent_t *a)
{
    for (int i = 0; a->chans && i < a->cfg.channels; i++)
        if (!a->chans[i].w && !a->chans[i].retry_at)
            dial(&a->chans[i]);
}
