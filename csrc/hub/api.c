/* api: the front door's contract with its parts, request accessors and
 * ARM-shaped answers. See api.h. */
#include "api.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enc.h"
#include "log.h"

uint64_t api_now_ms(void)
{
    return uv_hrtime() / 1000000;
}

void api_reply_close(conn_t *c, int status, const char *reason, const char *ctype, const char *body)
{
    char phrase[160], head[512];
    const char *src = reason ? reason : http_reason(status);
    size_t o = 0;
    for (; *src && o + 1 < sizeof phrase; src++)
        phrase[o++] = (*src >= 0x20 && *src < 0x7f) ? *src : ' ';
    phrase[o] = '\0';
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n"
                     "Cache-Control: no-store\r\n\r\n",
                     status, phrase, ctype ? ctype : "text/plain", blen);
    int rc = conn_write2(c, head, (size_t)n, body, blen);
    if (rc < 0) /* nothing was queued; the close below is all the client gets */
        log_kv(LOG_DEBUG, "hub.reply_failed", "remote", conn_peer(c), "error", conn_error(c, rc), NULL);
    conn_close(c, 1);
}

static size_t ignore_data(conn_t *c, uint8_t *d, size_t n)
{
    (void)c, (void)d;
    return n;
}
const conn_cbs api_answered_cbs = {.on_data = ignore_data};

void api_json(api_resp *resp, int status, char *json)
{
    free(resp->body);
    resp->status = status;
    resp->ctype = "application/json; charset=utf-8";
    resp->body = json;
}

void api_error(api_resp *resp, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *root = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", msg);
    api_json(resp, status, cJSON_PrintUnformatted(root));
    cJSON_Delete(root);
}

const char *api_header(const api_req *req, const char *name, char *out, size_t cap)
{
    const http_header *h = http_find(req->http->headers, req->http->nheaders, name);
    if (!h || cap == 0)
        return NULL;
    size_t n = h->value_len < cap - 1 ? h->value_len : cap - 1;
    memcpy(out, h->value, n);
    out[n] = '\0';
    return out;
}

const char *api_query(const api_req *req, const char *name, char *out, size_t cap)
{
    url_slice raw;
    if (!url_query_get(req->query, name, &raw))
        return NULL;
    return enc_pct_decode(raw.p, raw.n, out, cap) < 0 ? NULL : out;
}

const char *api_form(const api_req *req, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = req->body, *end = req->body + req->body_len;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *fend = amp ? amp : end;
        if ((size_t)(fend - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
            const char *v = p + nl + 1;
            size_t vn = (size_t)(fend - v);
            char tmp[8192];
            if (vn >= sizeof tmp)
                return NULL;
            for (size_t i = 0; i < vn; i++)
                tmp[i] = v[i] == '+' ? ' ' : v[i];
            return enc_pct_decode(tmp, vn, out, cap) < 0 ? NULL : out;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

int api_method(const api_req *req, const char *m)
{
    return http_eq(req->http->method, req->http->method_len, m);
}

const char *api_jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

void api_set_str(cJSON *o, const char *name, const char *str)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, name);
    cJSON_AddStringToObject(o, name, str);
}

void api_store_failed(api_resp *resp, const char *why)
{
    api_error(resp, 500, "InternalServerError", "The state store failed: %s.", why);
}
