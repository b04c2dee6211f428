/* Unit tests for buf (bounded byte queue). */
#include "buf.h"
#include "check.h"

static int tests_run;

static void ceiling(void)
{
    buf_t b;
    buf_init(&b, 10);
    CHECK_EQ(buf_append(&b, "0123456789", 10), 0);
    CHECK_EQ(buf_append(&b, "x", 1), -1); /* never past the ceiling */
    CHECK_EQ(buf_len(&b), 10);
    CHECK_EQ(buf_room(&b), 0);
    size_t got;
    buf_reserve(&b, 5, &got);
    CHECK_EQ(got, 0);
    buf_consume(&b, 4);
    CHECK_EQ(buf_room(&b), 4);
    CHECK_EQ(buf_append(&b, "abcd", 4), 0); /* compacts instead of growing */
    CHECK(b.cap <= 10);
    CHECK_MEM(buf_data(&b), buf_len(&b), "456789abcd");
    buf_free(&b);
}

static void reserve_commit(void)
{
    buf_t b;
    buf_init(&b, 1 << 20);
    size_t got;
    uint8_t *p = buf_reserve(&b, 100, &got);
    CHECK_EQ(got, 100);
    memcpy(p, "hello", 5);
    buf_commit(&b, 5);
    CHECK_MEM(buf_data(&b), buf_len(&b), "hello");
    buf_consume(&b, 99); /* over-consume clears */
    CHECK_EQ(buf_len(&b), 0);
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(buf_append(&b, "0123456789", 10), 0);
    CHECK_EQ(buf_len(&b), 10000);
    buf_clear(&b);
    CHECK_EQ(buf_len(&b), 0);
    buf_free(&b);
}

static void detach(void)
{
    buf_t b;
    buf_init(&b, 64);
    uint8_t *bytes;
    size_t n;
    CHECK(buf_detach(&b, &bytes, &n) == NULL); /* nothing live */
    CHECK(bytes == NULL && n == 0);
    CHECK_EQ(buf_append(&b, "0123456789", 10), 0);
    buf_consume(&b, 3);
    void *block = buf_detach(&b, &bytes, &n);
    CHECK(block != NULL);
    CHECK_MEM(bytes, n, "3456789");
    CHECK_EQ(buf_len(&b), 0);
    CHECK(buf_data(&b) == NULL);
    /* The buffer lives on with its ceiling, on new storage. */
    CHECK_EQ(buf_append(&b, "abc", 3), 0);
    CHECK(buf_data(&b) != bytes - 3);
    CHECK_MEM(buf_data(&b), buf_len(&b), "abc");
    CHECK_MEM(bytes, n, "3456789"); /* the detached block is untouched */
    free(block);
    buf_consume(&b, 3);
    CHECK(buf_detach(&b, &bytes, &n) == NULL); /* drained: keeps its storage */
    CHECK(buf_data(&b) != NULL);
    buf_free(&b);
}

int main(void)
{
    TEST(ceiling);
    TEST(reserve_commit);
    TEST(detach);
    TEST_MAIN_END();
}
