/* pxy: proxy settings and the skip list. See pxy.h. */
#include "pxy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Where the parts of a proxy URL lie: scheme, userinfo (may be empty),
 * host:port. */
typedef struct parts {
    const char *scheme, *user, *hostport;
    size_t scheme_n, user_n, hostport_n;
} parts;

/* Returns 0, or -1 when url has no "://". The host may come out empty
 * (callers that need one check); userinfo is found either way, so a
 * password is scrubbed even from a URL that is otherwise unusable. */
static int split_any(const char *url, parts *p, int strict)
{
    memset(p, 0, sizeof *p);
    const char *sep = strstr(url, "://");
    if (!sep)
        return -1;
    p->scheme = url;
    p->scheme_n = (size_t)(sep - url);
    /* A scheme is letters, digits, '+', '-', '.': anything else means the
     * "://" found is not the URL's, and what precedes it may be secret. */
    for (size_t i = 0; strict && i < p->scheme_n; i++)
        if (!isalnum((unsigned char)url[i]) && !strchr("+-.", url[i]))
            return -1;
    /* Userinfo ends at the last '@' before the first '/': passwords may
     * hold an unencoded '@', '?' or '#', and none of it may be shown. */
    const char *a = sep + 3, *end = a + strcspn(a, "/");
    const char *at = NULL;
    for (const char *q = a; q < end; q++)
        if (*q == '@')
            at = q;
    if (at) {
        p->user = a;
        p->user_n = (size_t)(at - a);
        a = at + 1;
    }
    p->hostport = a;
    p->hostport_n = strcspn(a, "/?#");
    return 0;
}

static int split(const char *url, parts *p)
{
    return split_any(url, p, 1);
}

static const char *getenv_either(const char *lower, const char *upper)
{
    const char *v = getenv(lower);
    if (!v || !*v)
        v = getenv(upper);
    return v && *v ? v : NULL;
}

static int set_url(char *dst, const char *url, const char *what, char err[PXY_ERRLEN])
{
    if (!url || !*url) {
        dst[0] = '\0';
        return 0;
    }
    char buf[PXY_URL_MAX];
    if (strlen(url) > PXY_URL_MAX - 8) {
        snprintf(err, PXY_ERRLEN, "the %s proxy URL is longer than %d bytes", what, PXY_URL_MAX - 8);
        return -1;
    }
    if (!strstr(url, "://"))
        snprintf(buf, sizeof buf, "http://%s", url); /* curl's reading of a bare host:port */
    else
        snprintf(buf, sizeof buf, "%s", url);
    parts p;
    char shown[PXY_URL_MAX];
    pxy_display(buf, shown, sizeof shown);
    if (split(buf, &p) < 0 || !p.hostport_n ||
        !((p.scheme_n == 4 && !strncasecmp(p.scheme, "http", 4)) ||
          (p.scheme_n == 5 && !strncasecmp(p.scheme, "https", 5)))) {
        snprintf(err, PXY_ERRLEN, "the %s proxy %.120s is not an http:// or https:// URL with a host", what,
                 shown);
        return -1;
    }
    for (size_t i = 0; i < p.hostport_n; i++)
        if (isspace((unsigned char)p.hostport[i])) {
            snprintf(err, PXY_ERRLEN, "the %s proxy %.120s has a space in its host", what, shown);
            return -1;
        }
    memcpy(dst, buf, strlen(buf) + 1);
    return 0;
}

int pxy_set_https(pxy_cfg *cfg, const char *url, char err[PXY_ERRLEN])
{
    return set_url(cfg->https, url, "HTTPS", err);
}

int pxy_set_http(pxy_cfg *cfg, const char *url, char err[PXY_ERRLEN])
{
    return set_url(cfg->http, url, "HTTP", err);
}

int pxy_add_skip(pxy_cfg *cfg, const char *list, char err[PXY_ERRLEN])
{
    size_t have = strlen(cfg->skip), add = list ? strlen(list) : 0;
    if (!add)
        return 0;
    if (have + add + 2 > sizeof cfg->skip) {
        snprintf(err, PXY_ERRLEN, "the proxy skip list is longer than %d bytes", PXY_SKIP_MAX - 1);
        return -1;
    }
    if (have)
        cfg->skip[have++] = ',';
    memcpy(cfg->skip + have, list, add + 1);
    return 0;
}

void pxy_from_env(pxy_cfg *cfg)
{
    char err[PXY_ERRLEN];
    memset(cfg, 0, sizeof *cfg);
    const char *all = getenv_either("all_proxy", "ALL_PROXY");
    const char *hs = getenv_either("https_proxy", "HTTPS_PROXY");
    const char *h = getenv_either("http_proxy", "HTTP_PROXY");
    /* An unusable variable is ignored rather than fatal, as curl and
     * requests do; the caller's explicit settings can still override. */
    if (set_url(cfg->https, hs ? hs : all, "HTTPS", err) < 0)
        cfg->https[0] = '\0';
    if (set_url(cfg->http, h ? h : all, "HTTP", err) < 0)
        cfg->http[0] = '\0';
    const char *np = getenv_either("no_proxy", "NO_PROXY");
    if (np && pxy_add_skip(cfg, np, err) < 0)
        cfg->skip[0] = '\0';
}

/* Parses an IP literal (brackets allowed) into 4 or 16 bytes; returns the
 * family's byte count or 0. */
static int parse_ip(const char *s, size_t n, unsigned char out[16])
{
    char tmp[64];
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
    }
    if (!n || n >= sizeof tmp)
        return 0;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (inet_pton(AF_INET, tmp, out) == 1)
        return 4;
    if (inet_pton(AF_INET6, tmp, out) == 1)
        return 16;
    return 0;
}

static int prefix_equal(const unsigned char *a, const unsigned char *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole))
        return 0;
    if (!rest)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

/* One skip-list entry e[0..n) against host (already without brackets in
 * ip form when ipn > 0). */
static int entry_match(const char *e, size_t n, const char *host, size_t hl, const unsigned char *ip, int ipn)
{
    if (n == 1 && e[0] == '*')
        return 1;
    const char *slash = memchr(e, '/', n);
    if (slash) {
        unsigned char net[16];
        int fam = parse_ip(e, (size_t)(slash - e), net);
        char bits_s[8];
        size_t bl = n - (size_t)(slash - e) - 1;
        if (!fam || fam != ipn || bl == 0 || bl >= sizeof bits_s)
            return 0;
        memcpy(bits_s, slash + 1, bl);
        bits_s[bl] = '\0';
        char *end;
        long bits = strtol(bits_s, &end, 10);
        if (*end || bits < 0 || bits > fam * 8)
            return 0;
        return prefix_equal(ip, net, (unsigned)bits);
    }
    unsigned char one[16];
    int fam = parse_ip(e, n, one);
    if (fam)
        return fam == ipn && !memcmp(one, ip, (size_t)fam);
    /* A name: drop "*." or ".", and a trailing ":port". */
    if (n >= 2 && e[0] == '*' && e[1] == '.') {
        e += 2;
        n -= 2;
    } else if (n >= 1 && e[0] == '.') {
        e++;
        n--;
    }
    const char *colon = memchr(e, ':', n);
    if (colon)
        n = (size_t)(colon - e);
    if (!n || ipn)
        return 0;
    if (hl == n)
        return strncasecmp(host, e, n) == 0;
    return hl > n && host[hl - n - 1] == '.' && strncasecmp(host + hl - n, e, n) == 0;
}

int pxy_skip_match(const char *list, size_t len, const char *host)
{
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host++;
        hl -= 2;
    }
    while (hl && host[hl - 1] == '.')
        hl--; /* "example.com." is example.com */
    unsigned char ip[16];
    int ipn = parse_ip(host, hl, ip);
    size_t i = 0;
    while (i < len) {
        while (i < len && (list[i] == ',' || isspace((unsigned char)list[i])))
            i++;
        size_t s = i;
        while (i < len && list[i] != ',' && !isspace((unsigned char)list[i]))
            i++;
        if (i > s && entry_match(list + s, i - s, host, hl, ip, ipn))
            return 1;
    }
    return 0;
}

const char *pxy_for(const pxy_cfg *cfg, int secure, const char *host)
{
    const char *u = secure ? cfg->https : cfg->http;
    if (!u[0] || pxy_skip_match(cfg->skip, strlen(cfg->skip), host))
        return NULL;
    return u;
}

void pxy_display(const char *url, char *out, size_t cap)
{
    parts p;
    if (!cap)
        return;
    if (split(url, &p) < 0) {
        /* Not a URL: show nothing of it, since it may be all password. */
        snprintf(out, cap, "(unparsable proxy URL)");
        return;
    }
    snprintf(out, cap, "%.*s://%.*s", (int)p.scheme_n, p.scheme, (int)p.hostport_n, p.hostport);
}

static int hexval(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Replaces each occurrence of secret[0..n) in msg with "***" (shorter
 * secrets with as many '*'), scanning on after each replacement. */
static void scrub_one(char *msg, const char *secret)
{
    /* strlen, not the decoded byte count: "%00" ends the C string early. */
    size_t n = strlen(secret);
    if (n == 0)
        return;
    size_t rep = n < 3 ? n : 3;
    char *from = msg, *hit;
    while ((hit = strstr(from, secret)) != NULL) {
        memset(hit, '*', rep);
        if (n > rep)
            memmove(hit + rep, hit + n, strlen(hit + n) + 1);
        from = hit + rep;
    }
}

void pxy_scrub(const char *url, char *msg)
{
    parts p;
    /* Leniently: a password in a URL that is unusable otherwise is still
     * a password. */
    if (!url || split_any(url, &p, 0) < 0 || !p.user_n)
        return;
    const char *colon = memchr(p.user, ':', p.user_n);
    char raw[PXY_URL_MAX], dec[PXY_URL_MAX];
    /* The user name is scrubbed too when there is no password field: some
     * write a token as the user. */
    const char *s = colon ? colon + 1 : p.user;
    size_t n = colon ? p.user_n - (size_t)(colon + 1 - p.user) : p.user_n;
    if (n == 0 || n >= sizeof raw)
        return;
    memcpy(raw, s, n);
    raw[n] = '\0';
    size_t dn = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (raw[i] == '%' && i + 2 < n && (hi = hexval(raw[i + 1])) >= 0 && (lo = hexval(raw[i + 2])) >= 0) {
            dec[dn++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            dec[dn++] = raw[i];
        }
    }
    dec[dn] = '\0';
    scrub_one(msg, raw);
    scrub_one(msg, dec);
}
