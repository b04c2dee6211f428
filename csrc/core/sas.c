/* sas: SAS token creation, parsing and authorization. See sas.h. */
#include "sas.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "enc.h"

const char *sas_strerror(int rc)
{
    switch (rc) {
    case SAS_OK: return "ok";
    case SAS_ERR_MISSING: return "no token";
    case SAS_ERR_MALFORMED: return "malformed token";
    case SAS_ERR_UNKNOWN_KEY: return "unknown key name";
    case SAS_ERR_SIGNATURE: return "bad signature";
    case SAS_ERR_EXPIRED: return "token expired";
    case SAS_ERR_SCOPE: return "token not valid for this entity";
    case SAS_ERR_RIGHTS: return "token lacks the required right";
    }
    return "unknown";
}

int sas_http_status(int rc)
{
    return rc >= SAS_ERR_EXPIRED ? 401 : 403;
}

int sas_parse(const char *tok, size_t n, sas_token *t)
{
    static const char prefix[] = "SharedAccessSignature ";
    memset(t, 0, sizeof *t);
    if (n > SAS_MAX_TOKEN)
        return SAS_ERR_MALFORMED;
    if (n >= sizeof prefix - 1 && strncasecmp(tok, prefix, sizeof prefix - 1) == 0) {
        tok += sizeof prefix - 1;
        n -= sizeof prefix - 1;
    }
    size_t i = 0;
    while (i < n) {
        size_t ks = i;
        while (i < n && tok[i] != '=' && tok[i] != '&')
            i++;
        if (i >= n || tok[i] != '=')
            return SAS_ERR_MALFORMED;
        size_t kl = i - ks, vs = ++i;
        while (i < n && tok[i] != '&')
            i++;
        size_t vl = i - vs;
        if (i < n)
            i++; /* skip '&' */
        const char *k = tok + ks, *v = tok + vs;
        const char **slot = NULL;
        size_t *slot_len = NULL;
        if (kl == 2 && memcmp(k, "sr", 2) == 0)
            slot = &t->sr, slot_len = &t->sr_len;
        else if (kl == 3 && memcmp(k, "sig", 3) == 0)
            slot = &t->sig, slot_len = &t->sig_len;
        else if (kl == 3 && memcmp(k, "skn", 3) == 0)
            slot = &t->skn, slot_len = &t->skn_len;
        else if (kl == 2 && memcmp(k, "se", 2) == 0)
            slot = &t->se_raw, slot_len = &t->se_len;
        else
            continue; /* unknown fields are ignored, as Azure does */
        if (*slot || vl == 0)
            return SAS_ERR_MALFORMED; /* duplicate or empty */
        *slot = v;
        *slot_len = vl;
    }
    if (!t->sr || !t->sig || !t->skn || !t->se_raw || t->se_len > 12)
        return SAS_ERR_MALFORMED;
    int64_t se = 0;
    for (size_t j = 0; j < t->se_len; j++) {
        if (t->se_raw[j] < '0' || t->se_raw[j] > '9')
            return SAS_ERR_MALFORMED;
        se = se * 10 + (t->se_raw[j] - '0');
    }
    t->se = se;
    return SAS_OK;
}

/* HMAC-SHA256(key, sr "\n" se) into out[32]. */
static int sign(const char *key, const char *sr, size_t sr_len, const char *se, size_t se_len,
                uint8_t out[32])
{
    char msg[SAS_MAX_TOKEN + 16];
    if (sr_len + 1 + se_len > sizeof msg)
        return -1;
    memcpy(msg, sr, sr_len);
    msg[sr_len] = '\n';
    memcpy(msg + sr_len + 1, se, se_len);
    unsigned int olen = 32;
    if (!HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)msg, sr_len + 1 + se_len, out,
              &olen) ||
        olen != 32)
        return -1;
    return 0;
}

long sas_create(const char *resource, const char *key_name, const char *key, int64_t expiry, char *out,
                size_t cap)
{
    char sr[1024], se[24], b64[64], sig[128];
    if (enc_pct_encode(resource, strlen(resource), sr, sizeof sr) < 0)
        return -1;
    int sel = snprintf(se, sizeof se, "%lld", (long long)expiry);
    uint8_t mac[32];
    if (sign(key, sr, strlen(sr), se, (size_t)sel, mac) < 0 ||
        enc_b64_encode(mac, sizeof mac, b64, sizeof b64) < 0 ||
        enc_pct_encode(b64, strlen(b64), sig, sizeof sig) < 0)
        return -1;
    int n = snprintf(out, cap, "SharedAccessSignature sr=%s&sig=%s&se=%s&skn=%s", sr, sig, se, key_name);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

int sas_check_sig(const sas_token *t, const char *key)
{
    char sig64[128];
    uint8_t got[48], want[32];
    long b = enc_pct_decode(t->sig, t->sig_len, sig64, sizeof sig64);
    if (b < 0 || enc_b64_decode(sig64, (size_t)b, got, sizeof got) != 32)
        return SAS_ERR_SIGNATURE;
    if (sign(key, t->sr, t->sr_len, t->se_raw, t->se_len, want) < 0)
        return SAS_ERR_SIGNATURE;
    return CRYPTO_memcmp(got, want, 32) == 0 ? SAS_OK : SAS_ERR_SIGNATURE;
}

long sas_normalize(const char *sr, size_t n, char *out, size_t cap)
{
    char dec[1024];
    long dl = enc_pct_decode(sr, n, dec, sizeof dec);
    if (dl <= 0)
        return -1;
    const char *p = dec, *end = dec + dl;
    const char *sch = strstr(dec, "://");
    if (sch)
        p = sch + 3;
    const char *hs = p;
    while (p < end && *p != '/' && *p != ':')
        p++;
    size_t hl = (size_t)(p - hs);
    if (hl == 0)
        return -1;
    if (p < end && *p == ':') {
        while (p < end && *p != '/')
            p++;
    }
    size_t pl = (size_t)(end - p);
    while (pl > 0 && p[pl - 1] == '/')
        pl--;
    if (hl + pl + 1 > cap)
        return -1;
    for (size_t i = 0; i < hl; i++)
        out[i] = (char)tolower((unsigned char)hs[i]);
    memcpy(out + hl, p, pl);
    out[hl + pl] = '\0';
    return (long)(hl + pl);
}

int sas_covers(const char *norm, const char *host, const char *entity)
{
    char target[1024];
    int n = snprintf(target, sizeof target, "%s/%s", host, entity);
    if (n < 0 || (size_t)n >= sizeof target)
        return 0;
    size_t tl = strlen(target);
    while (tl > 0 && target[tl - 1] == '/')
        target[--tl] = '\0';
    size_t nl = strlen(norm);
    if (nl > tl || strncasecmp(norm, target, nl) != 0)
        return 0;
    return nl == tl || target[nl] == '/';
}

static const sas_rule *find_rule(const sas_rule *r, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(r[i].name) == len && memcmp(r[i].name, name, len) == 0)
            return &r[i];
    return NULL;
}

int sas_authorize(const char *tok, size_t n, const sas_rule *entity_rules, size_t n_entity,
                  const sas_rule *ns_rules, size_t n_ns, const char *host, const char *entity, int right,
                  int64_t now, int64_t *expires)
{
    if (!tok || n == 0)
        return SAS_ERR_MISSING;
    sas_token t;
    int rc = sas_parse(tok, n, &t);
    if (rc)
        return rc;
    const sas_rule *rule = find_rule(entity_rules, n_entity, t.skn, t.skn_len);
    if (!rule)
        rule = find_rule(ns_rules, n_ns, t.skn, t.skn_len);
    if (!rule)
        return SAS_ERR_UNKNOWN_KEY;
    if ((rc = sas_check_sig(&t, rule->key)) != SAS_OK)
        return rc;
    if (t.se <= now)
        return SAS_ERR_EXPIRED;
    char norm[1024];
    if (sas_normalize(t.sr, t.sr_len, norm, sizeof norm) < 0)
        return SAS_ERR_MALFORMED;
    if (!sas_covers(norm, host, entity))
        return SAS_ERR_SCOPE;
    int have = rule->rights;
    if (have & SAS_RIGHT_MANAGE)
        have |= SAS_RIGHT_LISTEN | SAS_RIGHT_SEND;
    if (!(have & right))
        return SAS_ERR_RIGHTS;
    if (expires)
        *expires = t.se;
    return SAS_OK;
}
