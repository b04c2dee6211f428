/* grants: refresh tokens and device codes. See grants.h. */
#include "grants.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "enc.h"
#include "json.h"

#define RT_TYPE "rt"
#define RT_PARENT "/signin"
#define RT_PREFIX "ckrt."
#define RT_ID_LEN 72 /* "rt/" + 64 hex + NUL */
#define REVOKE_BATCH 64

typedef struct device {
    int used; /* 0 free, 1 pending, 2 approved */
    int64_t expires;
    char device_code[GRANTS_DEVICE_CODE_LEN];
    char user_code[GRANTS_USER_CODE_LEN]; /* "ABCD-EFGH" */
    char client_id[GRANTS_CLIENT_LEN];
    char scope[GRANTS_SCOPE_LEN];
    char oid[GRANTS_OID_LEN];
} device;

struct grants {
    store_t *s;
    int rt_ttl;
    int64_t skew; /* grants_advance_clock */
    device dev[GRANTS_DEVICE_MAX];
};

static int64_t now_s(const grants_t *g)
{
    return (int64_t)time(NULL) + g->skew;
}

grants_t *grants_new(store_t *s, int rt_ttl)
{
    grants_t *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->s = s;
    g->rt_ttl = rt_ttl > 0 ? rt_ttl : 86400;
    return g;
}

void grants_free(grants_t *g)
{
    if (g)
        OPENSSL_cleanse(g->dev, sizeof g->dev);
    free(g);
}

void grants_advance_clock(grants_t *g, int64_t seconds)
{
    g->skew += seconds;
}

static void lower_copy(char *out, size_t cap, const char *in)
{
    size_t i = 0;
    for (; in[i] && i + 1 < cap; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[i] = '\0';
}

/* The store key of a token: its SHA-256, so the database never holds a
 * usable refresh token. */
static int rt_id(const char *token, char out[RT_ID_LEN])
{
    uint8_t md[32];
    unsigned mdn = 0;
    memcpy(out, "rt/", 3);
    if (!EVP_Digest(token, strlen(token), md, &mdn, EVP_sha256(), NULL) || mdn != 32 ||
        enc_hex(md, 32, out + 3, RT_ID_LEN - 3) < 0)
        return -1;
    return 0;
}

typedef struct rt_row {
    char client_id[GRANTS_CLIENT_LEN];
    char oid[GRANTS_OID_LEN];
    int64_t expires;
    int found;
} rt_row;

static int read_rt(void *ud, const store_row *r)
{
    rt_row *w = ud;
    cJSON *b = cJSON_Parse(r->body);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(b, "clientId");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(b, "expiresOn");
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(b, "objectId");
    if (cJSON_IsString(c) && cJSON_IsNumber(e) && cJSON_IsString(o) &&
        strlen(c->valuestring) < sizeof w->client_id && strlen(o->valuestring) < sizeof w->oid) {
        snprintf(w->client_id, sizeof w->client_id, "%s", c->valuestring);
        snprintf(w->oid, sizeof w->oid, "%s", o->valuestring);
        w->expires = (int64_t)e->valuedouble;
        w->found = 1;
    }
    cJSON_Delete(b);
    return 0;
}

/* Collects ids of one user's refresh tokens: all of them, or the expired
 * ones only. */
typedef struct rt_walk {
    char ids[REVOKE_BATCH][RT_ID_LEN];
    size_t n;
    int64_t expired_before; /* 0: every row */
    int more;
} rt_walk;

static int collect(void *ud, const store_row *r)
{
    rt_walk *w = ud;
    if (w->expired_before) {
        rt_row row = {0};
        read_rt(&row, r);
        if (row.found && row.expires > w->expired_before)
            return 0;
    }
    if (w->n == REVOKE_BATCH) {
        w->more = 1;
        return 1;
    }
    if (strlen(r->id) < RT_ID_LEN)
        snprintf(w->ids[w->n++], RT_ID_LEN, "%s", r->id);
    return 0;
}

/* Deletes a user's refresh tokens (expired ones only when expired_before
 * is set). Returns how many, or -1. */
static int drop_rows(grants_t *g, const char *principal, int64_t expired_before)
{
    int total = 0;
    rt_walk *w = malloc(sizeof *w);
    if (!w)
        return -1;
    do {
        memset(w, 0, sizeof *w);
        w->expired_before = expired_before;
        if (store_list(g->s, RT_TYPE, NULL, principal, collect, w) < 0 && !w->more) {
            total = -1;
            break;
        }
        for (size_t i = 0; i < w->n; i++) {
            int rc = store_delete(g->s, w->ids[i]);
            if (rc < 0) {
                total = -1;
                break;
            }
            total += rc;
        }
    } while (total >= 0 && w->more && w->n);
    free(w);
    return total;
}

int grants_issue_refresh(grants_t *g, const char *oid, const char *client_id, char out[GRANTS_RT_LEN])
{
    uint8_t raw[32];
    char id[RT_ID_LEN], principal[GRANTS_OID_LEN];
    if (strlen(oid) >= GRANTS_OID_LEN || strlen(client_id) >= GRANTS_CLIENT_LEN)
        return GRANTS_FAILED;
    memcpy(out, RT_PREFIX, sizeof RT_PREFIX - 1);
    if (enc_random(raw, sizeof raw) ||
        enc_b64url_encode(raw, sizeof raw, out + sizeof RT_PREFIX - 1,
                          GRANTS_RT_LEN - (sizeof RT_PREFIX - 1)) < 0 ||
        rt_id(out, id) < 0)
        return GRANTS_FAILED;
    OPENSSL_cleanse(raw, sizeof raw);
    lower_copy(principal, sizeof principal, oid);
    int64_t now = now_s(g);
    /* Each sign-in adds a row; the user's expired ones go here, so the
     * table holds at most the sessions still alive. */
    drop_rows(g, principal, now);
    unsigned mark = json_failures();
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "objectId", oid);
    cJSON_AddStringToObject(b, "clientId", client_id);
    cJSON_AddNumberToObject(b, "issuedOn", (double)now);
    cJSON_AddNumberToObject(b, "expiresOn", (double)(now + g->rt_ttl));
    char *body = json_print(b, mark, 0);
    cJSON_Delete(b);
    store_row row = {.id = id, .type = RT_TYPE, .parent = RT_PARENT, .principal = principal, .body = body};
    int rc = body && store_put(g->s, &row) == 0 ? GRANTS_OK : GRANTS_FAILED;
    free(body);
    if (rc != GRANTS_OK)
        OPENSSL_cleanse(out, GRANTS_RT_LEN);
    return rc;
}

int grants_redeem_refresh(grants_t *g, const char *token, const char *client_id, char oid[GRANTS_OID_LEN])
{
    char id[RT_ID_LEN];
    if (strncmp(token, RT_PREFIX, sizeof RT_PREFIX - 1) != 0 || strlen(token) >= GRANTS_RT_LEN)
        return GRANTS_UNKNOWN;
    if (rt_id(token, id) < 0)
        return GRANTS_FAILED;
    rt_row row = {0};
    int rc = store_get(g->s, id, read_rt, &row);
    if (rc < 0)
        return GRANTS_FAILED;
    /* A token issued to another client is not this client's to use. */
    if (rc == 0 || !row.found || strcmp(row.client_id, client_id) != 0)
        return GRANTS_UNKNOWN;
    if (row.expires <= now_s(g))
        return GRANTS_EXPIRED;
    snprintf(oid, GRANTS_OID_LEN, "%s", row.oid);
    return GRANTS_OK;
}

int grants_revoke(grants_t *g, const char *oid)
{
    char principal[GRANTS_OID_LEN];
    lower_copy(principal, sizeof principal, oid);
    for (size_t i = 0; i < GRANTS_DEVICE_MAX; i++)
        if (g->dev[i].used && !strcasecmp(g->dev[i].oid, oid)) {
            OPENSSL_cleanse(&g->dev[i], sizeof g->dev[i]);
        }
    int n = drop_rows(g, principal, 0);
    return n < 0 ? GRANTS_FAILED : n;
}

/* ---- device codes --------------------------------------------------------- */

/* No 0/O, 1/I/L: the person reads the code off one screen and types it. */
static const char user_alphabet[] = "BCDFGHJKMNPQRSTVWXZ23456789";

static void expire_devices(grants_t *g)
{
    int64_t now = now_s(g);
    for (size_t i = 0; i < GRANTS_DEVICE_MAX; i++)
        if (g->dev[i].used && g->dev[i].expires + 60 < now) /* kept a minute to answer expired_token */
            OPENSSL_cleanse(&g->dev[i], sizeof g->dev[i]);
}

int grants_device_start(grants_t *g, const char *client_id, const char *scope,
                        char device_code[GRANTS_DEVICE_CODE_LEN], char user_code[GRANTS_USER_CODE_LEN])
{
    if (strlen(client_id) >= GRANTS_CLIENT_LEN || strlen(scope) >= GRANTS_SCOPE_LEN)
        return GRANTS_FAILED;
    expire_devices(g);
    device *d = NULL;
    for (size_t i = 0; i < GRANTS_DEVICE_MAX && !d; i++)
        if (!g->dev[i].used)
            d = &g->dev[i];
    if (!d)
        return GRANTS_TOO_MANY;
    uint8_t raw[32], uc[8];
    if (enc_random(raw, sizeof raw) || enc_random(uc, sizeof uc) ||
        enc_b64url_encode(raw, sizeof raw, d->device_code, sizeof d->device_code) < 0)
        return GRANTS_FAILED;
    /* 8 letters of 27: ~2^38 codes against at most 64 pending ones. The
     * modulo bias (256 % 27) is far below what would help a guesser. */
    size_t o = 0;
    for (size_t i = 0; i < sizeof uc; i++) {
        if (i == 4)
            d->user_code[o++] = '-';
        d->user_code[o++] = user_alphabet[uc[i] % (sizeof user_alphabet - 1)];
    }
    d->user_code[o] = '\0';
    snprintf(d->client_id, sizeof d->client_id, "%s", client_id);
    snprintf(d->scope, sizeof d->scope, "%s", scope);
    d->oid[0] = '\0';
    d->expires = now_s(g) + GRANTS_DEVICE_TTL;
    d->used = 1;
    snprintf(device_code, GRANTS_DEVICE_CODE_LEN, "%s", d->device_code);
    snprintf(user_code, GRANTS_USER_CODE_LEN, "%s", d->user_code);
    OPENSSL_cleanse(raw, sizeof raw);
    return GRANTS_OK;
}

/* "abcd efgh", "ABCD-EFGH" and "abcdefgh" all name ABCD-EFGH. */
static int same_user_code(const char *have, const char *typed)
{
    char a[16], b[16];
    size_t na = 0, nb = 0;
    for (const char *p = have; *p && na < sizeof a - 1; p++)
        if (isalnum((unsigned char)*p))
            a[na++] = (char)toupper((unsigned char)*p);
    for (const char *p = typed; *p && nb < sizeof b - 1; p++)
        if (isalnum((unsigned char)*p))
            b[nb++] = (char)toupper((unsigned char)*p);
        else if (*p != '-' && *p != ' ')
            return 0;
    return na == nb && na > 0 && CRYPTO_memcmp(a, b, na) == 0;
}

int grants_device_approve(grants_t *g, const char *user_code, const char *oid)
{
    if (strlen(oid) >= GRANTS_OID_LEN)
        return GRANTS_UNKNOWN;
    for (size_t i = 0; i < GRANTS_DEVICE_MAX; i++) {
        device *d = &g->dev[i];
        if (d->used != 1 || !same_user_code(d->user_code, user_code))
            continue;
        if (d->expires <= now_s(g))
            return GRANTS_EXPIRED;
        snprintf(d->oid, sizeof d->oid, "%s", oid);
        d->used = 2;
        return GRANTS_OK;
    }
    return GRANTS_UNKNOWN;
}

int grants_device_poll(grants_t *g, const char *device_code, const char *client_id, char oid[GRANTS_OID_LEN],
                       char scope[GRANTS_SCOPE_LEN])
{
    size_t n = strlen(device_code);
    for (size_t i = 0; i < GRANTS_DEVICE_MAX; i++) {
        device *d = &g->dev[i];
        if (!d->used || strlen(d->device_code) != n || CRYPTO_memcmp(d->device_code, device_code, n) != 0)
            continue;
        if (strcmp(d->client_id, client_id) != 0)
            return GRANTS_UNKNOWN;
        if (d->expires <= now_s(g))
            return GRANTS_EXPIRED;
        if (d->used == 1)
            return GRANTS_PENDING;
        snprintf(oid, GRANTS_OID_LEN, "%s", d->oid);
        snprintf(scope, GRANTS_SCOPE_LEN, "%s", d->scope);
        OPENSSL_cleanse(d, sizeof *d); /* one use */
        return GRANTS_OK;
    }
    return GRANTS_UNKNOWN;
}
