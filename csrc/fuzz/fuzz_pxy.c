/* libFuzzer target: proxy settings as users write them (HTTPS_PROXY,
 * --proxy-skip-range): proxy URL checking, the skip list matcher, display
 * and scrubbing. Input: URL \n skip list \n host. Invariants: a displayed
 * or refused proxy never shows its password, and scrubbing removes it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pxy.h"

static const char *part(char **p)
{
    char *s = *p, *nl = s ? strchr(s, '\n') : NULL;
    if (nl) {
        *nl = '\0';
        *p = nl + 1;
    } else {
        *p = NULL;
    }
    return s ? s : "";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *p = buf;
    const char *url = part(&p), *skip = part(&p), *host = part(&p);
    pxy_cfg c;
    memset(&c, 0, sizeof c);
    char err[PXY_ERRLEN], shown[PXY_URL_MAX];
    (void)pxy_set_https(&c, url, err);
    (void)pxy_set_http(&c, url, err);
    (void)pxy_add_skip(&c, skip, err);
    (void)pxy_for(&c, 1, host);
    (void)pxy_for(&c, 0, host);
    (void)pxy_skip_match(skip, strlen(skip), host);
    pxy_display(url, shown, sizeof shown);
    /* The password of a well-formed URL with one never survives. */
    const char *sep = strstr(url, "://"), *at = sep ? strchr(sep + 3, '@') : NULL;
    const char *colon = sep && at ? memchr(sep + 3, ':', (size_t)(at - sep - 3)) : NULL;
    if (colon && at - colon > 4 && !memchr(sep + 3, '/', (size_t)(at - sep - 3)) && !strchr(at + 1, '@')) {
        char pw[PXY_URL_MAX];
        size_t n = (size_t)(at - colon - 1);
        if (n < sizeof pw) {
            memcpy(pw, colon + 1, n);
            pw[n] = '\0';
            /* (unless the scheme or the host itself spells it) */
            const char *after = strstr(shown, "://");
            if (after && strstr(after + 3, pw) && !strstr(at + 1, pw))
                abort();
            char msg[3 * PXY_URL_MAX];
            snprintf(msg, sizeof msg, "x %s y %s", pw, url);
            pxy_scrub(url, msg);
            if (strstr(msg, pw) && !strchr(pw, '*'))
                abort();
        }
    }
    free(buf);
    return 0;
}
