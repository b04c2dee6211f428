/* pxy: outbound HTTP proxy settings, as users already write them.
 *
 * A pxy_cfg holds the proxy for https:// and wss:// destinations, the one
 * for http:// and ws:// destinations, the skip list (NO_PROXY,
 * --proxy-skip-range: host names, domain suffixes, IP literals and CIDR
 * ranges) and a CA bundle for an https:// proxy's own certificate. It is
 * filled from the environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY,
 * NO_PROXY; lower case first, then upper case, as curl and Python's
 * requests read them) and from explicit settings, which win.
 *
 * Proxy URLs may carry credentials (http://user:pass@host:port). Those
 * must never reach a log line, an error or a metric: every place that
 * names a proxy uses pxy_display(), and pxy_scrub() removes a password
 * from any sentence that a lower layer (libcurl) produced. Nothing here
 * allocates: every field has a ceiling and longer input is refused. */
#ifndef CK_PXY_H
#define CK_PXY_H
#include <stddef.h>

#define PXY_URL_MAX 1024
#define PXY_SKIP_MAX 4096
#define PXY_ERRLEN 256

typedef struct pxy_cfg {
    char https[PXY_URL_MAX]; /* "" : https/wss destinations go direct */
    char http[PXY_URL_MAX];  /* "" : http/ws destinations go direct */
    char skip[PXY_SKIP_MAX]; /* comma or space separated */
    char ca_file[PXY_URL_MAX];
} pxy_cfg;

/* Fills cfg from the environment (cleared first). */
void pxy_from_env(pxy_cfg *cfg);

/* Sets one field from an explicit setting, checking it: a proxy URL must
 * be http:// or https:// with a host (a bare host[:port] gets http://), at
 * most PXY_URL_MAX - 8 bytes. Returns 0 or -1 with a sentence in err that
 * never contains the password. */
int pxy_set_https(pxy_cfg *cfg, const char *url, char err[PXY_ERRLEN]);
int pxy_set_http(pxy_cfg *cfg, const char *url, char err[PXY_ERRLEN]);
/* Appends to the skip list (the API server's address, for example). */
int pxy_add_skip(pxy_cfg *cfg, const char *list, char err[PXY_ERRLEN]);

/* The proxy URL a connection to `host` (name or IP literal, IPv6 with or
 * without brackets) should use, or NULL to dial directly: secure selects
 * the https proxy. */
const char *pxy_for(const pxy_cfg *cfg, int secure, const char *host);

/* 1 when `host` matches an entry of the skip list `list`:
 *   "*"                 every host
 *   "example.com"       example.com and every name below it
 *   ".example.com"      the same (a leading "." or "*." is ignored)
 *   "10.0.0.0/8"        IP literals in that range (IPv4 or IPv6)
 *   "10.1.2.3", "::1"   that address
 * Names compare case-insensitively; a ":port" after an entry is ignored. */
int pxy_skip_match(const char *list, size_t len, const char *host);

/* scheme://host:port of a proxy URL, without user or password, into out
 * (always NUL-terminated). */
void pxy_display(const char *url, char *out, size_t cap);
/* Replaces every occurrence of the password (raw and percent-decoded) of
 * `url` in msg with "***", in place. */
void pxy_scrub(const char *url, char *msg);

#endif
