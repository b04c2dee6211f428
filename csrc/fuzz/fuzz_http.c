/* libFuzzer target: HTTP/1.1 request and response heads, body framing and
 * the chunked decoder, fed the same bytes. Any crash, over-read (ASan) or
 * undefined behaviour (UBSan) is a finding; results are also checked for
 * internal consistency. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy sized exactly, so ASan sees any read past the end. */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    http_request req;
    int rc = http_parse_request(buf, size, 0, NULL, &req);
    if (rc > 0) {
        if ((size_t)rc > size)
            abort();
        for (size_t i = 0; i < req.nheaders; i++)
            if (req.headers[i].name < buf || req.headers[i].value + req.headers[i].value_len > buf + rc)
                abort(); /* slices must stay inside the head */
        uint64_t len;
        http_request_body(&req, &len);
        /* Incremental parsing must agree with one-shot parsing. */
        size_t last = 0;
        for (size_t cut = 1; cut < (size_t)rc; cut += 1 + cut / 3) {
            http_request r2;
            int rc2 = http_parse_request(buf, cut, last, NULL, &r2);
            if (rc2 > 0)
                abort();
            last = cut;
        }
    }
    http_response res;
    rc = http_parse_response(buf, size, 0, NULL, &res);
    if (rc > 0) {
        uint64_t len;
        http_response_body(&res, "GET", 3, &len);
    }
    http_chunked c;
    http_chunked_init(&c);
    size_t off = 0;
    while (off < size && !c.done) {
        const char *d;
        size_t dl;
        long n = http_chunked_step(&c, buf + off, size - off, &d, &dl);
        if (n < 0)
            break;
        if (n == 0 || (size_t)n > size - off || (dl && (d < buf + off || d + dl > buf + off + n)))
            abort();
        off += (size_t)n;
    }
    free(buf);
    return 0;
}
