/* check.h: tiny assertion macros for the C unit tests. Each failure prints
 * both sides and the location, then the binary exits non-zero; the final
 * line "N passed, 0 failed" is what CI reads. */
#ifndef CK_CHECK_H
#define CK_CHECK_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int check_count;
static const char *check_name = "";

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        check_count++;                                                                                       \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: %s: CHECK(%s) failed\n", __FILE__, __LINE__, check_name, #cond);         \
            exit(1);                                                                                         \
        }                                                                                                    \
    } while (0)

#define CHECK_EQ(a, b)                                                                                       \
    do {                                                                                                     \
        long long a_ = (long long)(a), b_ = (long long)(b);                                                  \
        check_count++;                                                                                       \
        if (a_ != b_) {                                                                                      \
            fprintf(stderr, "%s:%d: %s: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, check_name,    \
                    #a, #b, a_, b_);                                                                         \
            exit(1);                                                                                         \
        }                                                                                                    \
    } while (0)

#define CHECK_STR(a, b)                                                                                      \
    do {                                                                                                     \
        const char *a_ = (a), *b_ = (b);                                                                     \
        check_count++;                                                                                       \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                             \
            fprintf(stderr, "%s:%d: %s: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__,            \
                    check_name, #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");                             \
            exit(1);                                                                                         \
        }                                                                                                    \
    } while (0)

#define CHECK_MEM(p, n, lit)                                                                                 \
    do {                                                                                                     \
        check_count++;                                                                                       \
        if ((size_t)(n) != strlen(lit) || memcmp((p), (lit), (size_t)(n)) != 0) {                            \
            fprintf(stderr, "%s:%d: %s: slice \"%.*s\" != \"%s\"\n", __FILE__, __LINE__, check_name,         \
                    (int)(n), (const char *)(p), lit);                                                       \
            exit(1);                                                                                         \
        }                                                                                                    \
    } while (0)

#define TEST(fn)                                                                                             \
    do {                                                                                                     \
        check_name = #fn;                                                                                    \
        fn();                                                                                                \
        tests_run++;                                                                                         \
    } while (0)

#define TEST_MAIN_END()                                                                                      \
    do {                                                                                                     \
        printf("%s: %d passed, 0 failed (%d checks)\n", __FILE__, tests_run, check_count);                   \
        return 0;                                                                                            \
    } while (0)

/* Copies n bytes so that they end exactly where an unreadable page
 * begins: any read past the input faults at once (picohttpparser's trick).
 * The copy is writable; release with guarded_free. */
static inline uint8_t *guarded(const void *p, size_t n, size_t *map_len)
{
    long pg = sysconf(_SC_PAGESIZE);
    size_t data_pages = (n + (size_t)pg - 1) / (size_t)pg + 1;
    size_t len = (data_pages + 1) * (size_t)pg;
    uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        abort();
    mprotect(m + data_pages * (size_t)pg, (size_t)pg, PROT_NONE);
    uint8_t *start = m + data_pages * (size_t)pg - n;
    memcpy(start, p, n);
    *map_len = len;
    return start;
}

static inline void guarded_free(uint8_t *start, size_t n, size_t map_len)
{
    long pg = sysconf(_SC_PAGESIZE);
    uint8_t *end = start + n;
    uint8_t *m = end - ((map_len / (size_t)pg) - 1) * (size_t)pg;
    munmap(m, map_len);
}

#endif
