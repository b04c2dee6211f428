/* fwd: one rendezvous stream, served as HTTP/1.1 towards the API server.
 *
 * Request direction (proxy -> API server): request heads are parsed from
 * the stream and rewritten; bodies are forwarded as they arrive, framed by
 * Content-Length or chunked coding. Authentication per request:
 *   - a bearer token from the trusted OIDC issuer is verified (signature,
 *     issuer, audience, expiry) and the request goes out with the agent's
 *     own credential plus Impersonate-User (oid, else sub) and
 *     Impersonate-Group headers; any Impersonate-* header the client sent
 *     is refused with 403, so `kubectl --as` can never borrow the agent's
 *     right;
 *   - any other bearer token (a service-account token) is forwarded
 *     untouched and the API server judges it;
 *   - no token: 401, as the API server itself would answer.
 * Response direction: bytes from the API server go back unchanged in
 * binary frames (watches and `logs -f` simply keep streaming). After a
 * 101 the stream is a byte pipe both ways.
 * Each direction stops reading its source while its sink is full. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "agent.h"
#include "buf.h"
#include "hcli.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "url.h"
#include "ws.h"
#include "wsc.h"

enum { M_HEAD, M_BODY_LEN, M_BODY_CHUNKED, M_PIPE, M_DONE, M_WAIT };

#define IN_MAX (256 * 1024)
#define IN_HIGH (128 * 1024)
#define OUT_HEAD_MAX 32768

typedef struct fwd {
    agent_t *a;
    wsc_t *ws;
    conn_t *up;
    int up_open;
    buf_t in;
    size_t last_len;
    int mode;
    uint64_t remaining;
    http_chunked ch;
    int expect_upgrade;
    int closing;
    /* azure-rbac: the hub's decision for the head at the front of `in` */
    struct hcli *check;
    int jwks_waiting, jwks_retried;
    int authz_ready, authz_allowed;
    char authz_level[24], authz_reason[600];
} fwd;

static void fwd_finish(fwd *f)
{
    if (f->closing)
        return;
    f->closing = 1;
    hcli_cancel(f->check);
    f->check = NULL;
    if (f->jwks_waiting)
        jwks_forget(f);
    f->jwks_waiting = 0;
    if (f->ws)
        wsc_close(f->ws, WS_CLOSE_NORMAL, "");
    if (f->up)
        conn_close(f->up, 1);
}

static void maybe_free(fwd *f)
{
    if (f->ws || f->up)
        return;
    buf_free(&f->in);
    free(f);
}

/* Answers the client directly with a Kubernetes Status object and ends
 * the stream (what follows the refused request cannot be trusted to be
 * framed as the client meant). */
static void status_reply(fwd *f, int code, const char *reason, const char *msg_in)
{
    char body[1024], resp[1400], message[700];
    /* The message lands in a JSON string: keep it printable and unquoted. */
    size_t mi = 0;
    for (; msg_in[mi] && mi + 1 < sizeof message; mi++)
        message[mi] = (msg_in[mi] == '"' || msg_in[mi] == '\\' || (unsigned char)msg_in[mi] < 0x20) ? ' ' : msg_in[mi];
    message[mi] = '\0';
    int bl = snprintf(body, sizeof body,
                      "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
                      "\"message\":\"%s\",\"reason\":\"%s\",\"code\":%d}",
                      message, reason, code);
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     "Connection: close\r\n\r\n%s",
                     code, http_reason(code), bl, body);
    wsc_send(f->ws, WS_OP_BINARY, resp, (size_t)n);
    f->mode = M_DONE;
    fwd_finish(f);
}

static int is_impersonate(const http_header *h)
{
    return h->name_len >= 12 && strncasecmp(h->name, "Impersonate-", 12) == 0;
}

/* Appends to the outgoing head; returns -1 when it would overflow. */
static int put(char *out, size_t *o, const char *p, size_t n)
{
    if (*o + n > OUT_HEAD_MAX)
        return -1;
    memcpy(out + *o, p, n);
    *o += n;
    return 0;
}

static void pump_request(fwd *f);

static void jwks_done(void *ud, int ok)
{
    fwd *f = ud;
    (void)ok; /* verified again either way: the answer decides */
    f->jwks_waiting = 0;
    f->mode = M_HEAD;
    pump_request(f);
}

static void authz_done(void *ud, int allowed, const char *level, const char *reason)
{
    fwd *f = ud;
    f->check = NULL;
    f->authz_ready = 1;
    f->authz_allowed = allowed;
    snprintf(f->authz_level, sizeof f->authz_level, "%s", level);
    snprintf(f->authz_reason, sizeof f->authz_reason, "%s", reason);
    f->mode = M_HEAD;
    pump_request(f);
}

/* Checks who is calling and writes the rewritten head to the API server.
 * Returns 0, 1 when an azure-rbac decision is pending (the head stays
 * buffered and is parsed again when it arrives), or -1 after answering the
 * client. */
static int forward_head(fwd *f, const http_request *req)
{
    agent_t *a = f->a;
    const http_header *auth = http_find(req->headers, req->nheaders, "Authorization");
    if (!auth || auth->value_len < 8 || strncasecmp(auth->value, "Bearer ", 7) != 0) {
        status_reply(f, 401, "Unauthorized", "Unauthorized: a bearer token is required");
        return -1;
    }
    const char *tok = auth->value + 7;
    size_t tl = auth->value_len - 7;
    char iss[512] = "";
    int impersonate = 0;
    jwt_claims cl;
    memset(&cl, 0, sizeof cl);
    if (a->cfg.issuer && jwt_peek_issuer(tok, tl, iss, sizeof iss) == 0 && strcmp(iss, a->cfg.issuer) == 0) {
        char err[JWT_ERRLEN];
        jwt_expect want = {a->cfg.issuer, a->cfg.audience, (int64_t)time(NULL), 60};
        int rc = jwt_verify(tok, tl, &a->keys, &want, &cl, err);
        if (rc == JWT_ERR_UNKNOWN_KEY && !f->jwks_retried && a->cfg.jwks_url) {
            /* Keys may have rotated: hold this request until they are
             * fetched again, then verify once more. */
            f->jwks_retried = 1;
            if (jwks_refresh(a, jwks_done, f) == 0) {
                jwt_claims_free(&cl);
                f->jwks_waiting = 1;
                return 1;
            }
        }
        if (rc == JWT_ERR_UNKNOWN_KEY && !a->cfg.jwks_url && agent_reload_jwks(a) == 0) { /* file rewritten */
            jwt_claims_free(&cl);
            rc = jwt_verify(tok, tl, &a->keys, &want, &cl, err);
        }
        f->jwks_retried = 0;
        if (rc != JWT_OK) {
            jwt_claims_free(&cl);
            log_kv(LOG_INFO, "request.unauthenticated", "reason", err, NULL);
            char msg[256];
            snprintf(msg, sizeof msg, "Unauthorized: %s", jwt_strerror(rc));
            status_reply(f, 401, "Unauthorized", msg);
            return -1;
        }
        for (size_t i = 0; i < req->nheaders; i++) {
            if (is_impersonate(&req->headers[i])) {
                jwt_claims_free(&cl);
                status_reply(f, 403, "Forbidden",
                             "Forbidden: impersonation headers are not allowed on requests the agent impersonates");
                return -1;
            }
        }
        impersonate = 1;
    }
    /* An alg:none or foreign token is not ours to judge: it goes through
     * untouched and the API server decides. */
    static char out[OUT_HEAD_MAX];
    size_t o = 0;
    int bad = put(out, &o, req->method, req->method_len) || put(out, &o, " ", 1) ||
              put(out, &o, req->target, req->target_len) || put(out, &o, " HTTP/1.1\r\n", 11);
    for (size_t i = 0; i < req->nheaders && !bad; i++) {
        const http_header *h = &req->headers[i];
        /* Every Authorization header goes, not just the first: the API
         * server must see the agent's credential and nothing else. */
        if (impersonate && http_eq(h->name, h->name_len, "Authorization"))
            continue;
        bad = put(out, &o, h->name, h->name_len) || put(out, &o, ": ", 2) || put(out, &o, h->value, h->value_len) ||
              put(out, &o, "\r\n", 2);
    }
    const char *user = cl.oid[0] ? cl.oid : cl.sub;
    if (impersonate && a->azure_rbac && !f->authz_ready) {
        authz_attrs at;
        authz_attrs_of(req->method, req->method_len, req->target, req->target_len, &at);
        f->check = authz_check(a, user, cl.groups, cl.ngroups, cl.groups_overage, &at, authz_done, f);
        jwt_claims_free(&cl);
        if (!f->check) {
            status_reply(f, 503, "ServiceUnavailable", "azure-rbac: cannot ask the hub for an access decision");
            return -1;
        }
        return 1;
    }
    if (impersonate && a->azure_rbac) {
        f->authz_ready = 0;
        if (f->authz_allowed != 1) {
            log_kv(LOG_INFO, "request.denied", "user", user, "reason", f->authz_reason, NULL);
            jwt_claims_free(&cl);
            status_reply(f, f->authz_allowed < 0 ? 503 : 403, f->authz_allowed < 0 ? "ServiceUnavailable" : "Forbidden",
                         f->authz_reason);
            return -1;
        }
        /* The hub checked the scope; the API server checks the verb
         * through the ClusterRole bound to this level's group
         * (deploy/agent/azure-rbac.yaml). */
        char line[200];
        int n = snprintf(line, sizeof line, "Impersonate-Group: connectedk8s:azure-rbac:%s\r\n", f->authz_level);
        bad = put(out, &o, line, (size_t)n);
    }
    if (impersonate && !bad) {
        char line[9000];
        int n = snprintf(line, sizeof line, "Authorization: Bearer %s\r\nImpersonate-User: %s\r\n", a->token, user);
        bad = n >= (int)sizeof line || put(out, &o, line, (size_t)n);
        for (size_t g = 0; g < cl.ngroups && !bad; g++) {
            n = snprintf(line, sizeof line, "Impersonate-Group: %s\r\n", cl.groups[g]);
            bad = put(out, &o, line, (size_t)n);
        }
        if (cl.groups_overage && !cl.ngroups) {
            /* Too many groups for the token: ask the configured source
             * rather than refusing the user (Microsoft's agent refuses). */
            char **extra = NULL;
            int ng = agent_lookup_groups(a, user, &extra);
            if (ng < 0)
                log_kv(LOG_WARN, "request.groups_overage", "user", user, "note",
                       a->cfg.groups_file ? "no entry in the groups file" : "no --groups-file configured", NULL);
            for (int g = 0; g < ng && !bad; g++) {
                n = snprintf(line, sizeof line, "Impersonate-Group: %s\r\n", extra[g]);
                bad = put(out, &o, line, (size_t)n);
            }
            if (ng > 0)
                agent_free_groups(extra, ng);
        }
    }
    bad = bad || put(out, &o, "\r\n", 2);
    char path[512];
    url_slice p, q;
    url_split_target(req->target, req->target_len, &p, &q);
    snprintf(path, sizeof path, "%.*s", (int)(p.n < 500 ? p.n : 500), p.p);
    char verb[16];
    snprintf(verb, sizeof verb, "%.*s", (int)(req->method_len < 15 ? req->method_len : 15), req->method);
    log_kv(LOG_INFO, "request", "user", impersonate ? user : "(bearer passed through)", "name",
           impersonate ? cl.name : "", "verb", verb, "path", path, NULL);
    jwt_claims_free(&cl);
    if (bad) {
        status_reply(f, 431, "RequestHeaderFieldsTooLarge", "request head too large after rewriting");
        return -1;
    }
    f->a->requests++;
    return conn_write(f->up, out, o) < 0 ? -1 : 0;
}

/* Moves as much of the buffered request stream to the API server as it
 * will take. */
static void pump_request(fwd *f)
{
    while (f->up_open && !f->closing && buf_len(&f->in) && conn_writable(f->up)) {
        uint8_t *d = buf_data(&f->in);
        size_t len = buf_len(&f->in);
        if (f->mode == M_HEAD) {
            http_request req;
            int rc = http_parse_request((const char *)d, len, f->last_len, NULL, &req);
            if (rc == HTTP_INCOMPLETE) {
                f->last_len = len;
                break;
            }
            f->last_len = 0;
            if (rc < 0) {
                status_reply(f, rc == HTTP_TOO_LARGE ? 431 : 400, "BadRequest", "malformed or oversized request head");
                return;
            }
            uint64_t blen;
            int kind = http_request_body(&req, &blen);
            if (kind == HTTP_BAD) {
                status_reply(f, 400, "BadRequest", "conflicting or invalid body framing");
                return;
            }
            const http_header *upg = http_find(req.headers, req.nheaders, "Upgrade");
            f->expect_upgrade = upg != NULL;
            int fh = forward_head(f, &req);
            if (fh < 0)
                return;
            if (fh > 0) {
                f->mode = M_WAIT;
                break;
            }
            buf_consume(&f->in, (size_t)rc);
            f->mode = kind == HTTP_BODY_LENGTH ? M_BODY_LEN : kind == HTTP_BODY_CHUNKED ? M_BODY_CHUNKED : M_HEAD;
            f->remaining = blen;
            if (kind == HTTP_BODY_CHUNKED)
                http_chunked_init(&f->ch);
            if (f->expect_upgrade && f->mode == M_HEAD)
                f->mode = M_PIPE; /* what follows belongs to the upgraded protocol */
        } else if (f->mode == M_BODY_LEN) {
            size_t n = len < f->remaining ? len : (size_t)f->remaining;
            conn_write(f->up, d, n);
            buf_consume(&f->in, n);
            f->remaining -= n;
            if (!f->remaining)
                f->mode = M_HEAD;
        } else if (f->mode == M_BODY_CHUNKED) {
            const char *cd;
            size_t cdl;
            long n = http_chunked_step(&f->ch, (const char *)d, len, &cd, &cdl);
            if (n < 0) {
                status_reply(f, 400, "BadRequest", "malformed chunked body");
                return;
            }
            conn_write(f->up, d, (size_t)n); /* chunked framing passes through as is */
            buf_consume(&f->in, (size_t)n);
            if (f->ch.done)
                f->mode = M_HEAD;
            else if (n == 0)
                break;
        } else if (f->mode == M_WAIT) {
            break;
        } else if (f->mode == M_PIPE) {
            conn_write(f->up, d, len);
            buf_consume(&f->in, len);
        } else {
            buf_clear(&f->in);
        }
    }
    if (f->ws && buf_len(&f->in) < IN_HIGH)
        wsc_resume(f->ws);
}

/* ---- rendezvous side ---------------------------------------------------- */

static void ws_open(wsc_t *w, int status, int http_status, const char *reason)
{
    fwd *f = wsc_data(w);
    if (status == 0)
        return;
    char st[8];
    snprintf(st, sizeof st, "%d", http_status);
    log_kv(LOG_WARN, "stream.rendezvous_failed", "status", st, "reason", reason, NULL);
    f->ws = NULL;
    if (f->up)
        conn_close(f->up, 0);
    maybe_free(f);
}

static void ws_data(wsc_t *w, const uint8_t *d, size_t n)
{
    fwd *f = wsc_data(w);
    if (f->closing)
        return;
    if (buf_append(&f->in, d, n) < 0) { /* cannot happen while pausing at IN_HIGH */
        fwd_finish(f);
        return;
    }
    if (buf_len(&f->in) >= IN_HIGH)
        wsc_pause(w);
    pump_request(f);
}

static void ws_drain(wsc_t *w)
{
    fwd *f = wsc_data(w);
    if (f->up)
        conn_resume(f->up);
}

static void ws_close(wsc_t *w, int code, const char *reason)
{
    (void)code, (void)reason;
    fwd *f = wsc_data(w);
    f->ws = NULL;
    if (f->up)
        conn_close(f->up, 1);
    maybe_free(f);
}

static const wsc_cbs ws_cbs = {.on_open = ws_open, .on_data = ws_data, .on_drain = ws_drain, .on_close = ws_close};

/* ---- API server side ---------------------------------------------------- */

static void up_connect(conn_t *c, int status)
{
    fwd *f = conn_data(c);
    if (status < 0) {
        log_kv(LOG_ERROR, "stream.apiserver_unreachable", "error", conn_error(c, status), NULL);
        if (f->ws)
            status_reply(f, 502, "ServiceUnavailable", "the agent cannot reach the API server");
        return;
    }
    f->up_open = 1;
    pump_request(f);
}

static size_t up_data(conn_t *c, uint8_t *d, size_t n)
{
    fwd *f = conn_data(c);
    if (!f->ws)
        return n;
    if (f->expect_upgrade && f->mode == M_PIPE) {
        /* The first response after an upgrade request decides: 101 keeps
         * the pipe, anything else means HTTP carries on. */
        http_response res;
        int rc = http_parse_response((const char *)d, n, 0, NULL, &res);
        if (rc == HTTP_INCOMPLETE)
            return 0;
        f->expect_upgrade = 0;
        if (rc > 0 && res.status != 101)
            f->mode = M_HEAD;
    }
    wsc_send(f->ws, WS_OP_BINARY, d, n);
    if (!wsc_writable(f->ws))
        conn_pause(c);
    return n;
}

static void up_drain(conn_t *c)
{
    fwd *f = conn_data(c);
    pump_request(f);
}

static void up_close(conn_t *c, int err)
{
    (void)err;
    fwd *f = conn_data(c);
    f->up = NULL;
    f->up_open = 0;
    if (f->ws)
        wsc_close(f->ws, WS_CLOSE_NORMAL, "");
    maybe_free(f);
}

static const conn_cbs up_cbs = {.on_data = up_data, .on_drain = up_drain, .on_connect = up_connect,
                                .on_close = up_close};

void fwd_accept(agent_t *a, const char *address)
{
    fwd *f = calloc(1, sizeof *f);
    if (!f)
        return;
    f->a = a;
    buf_init(&f->in, IN_MAX);
    wsc_opts o = {.stream = 1};
    o.conn = conn_default_opts;
    f->ws = wsc_connect(a->loop, address, a->relay_tls, NULL, &ws_cbs, f, &o);
    if (!f->ws) {
        log_kv(LOG_WARN, "stream.bad_address", NULL);
        buf_free(&f->in);
        free(f);
        return;
    }
    f->up = conn_connect(a->loop, a->api_host, a->api_port, a->api_tls, NULL, &up_cbs, f, NULL);
    a->streams++;
}
