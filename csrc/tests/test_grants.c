/* Unit tests for grants: refresh tokens (issued, redeemed only by their
 * client, expired, revoked, kept across a reopened store, never stored in
 * the clear) and device codes (pending, approved once, typed loosely,
 * expired, another client's, a full table). */
#include <ctype.h>

#include "check.h"
#include "grants.h"
#include "store.h"

static int tests_run;

static int find_token(void *ud, const store_row *r)
{
    const char *tok = ud;
    CHECK(strstr(r->body, tok) == NULL); /* only its hash is kept */
    CHECK(strstr(r->id, tok + 5) == NULL);
    return 0;
}

static void refresh_tokens(void)
{
    char err[256], path[128], rt[GRANTS_RT_LEN], rt2[GRANTS_RT_LEN], oid[GRANTS_OID_LEN];
    snprintf(path, sizeof path, "/tmp/ck-test-grants-%d.db", (int)getpid());
    unlink(path);
    store_t *s = store_open(path, err);
    CHECK(s);
    grants_t *g = grants_new(s, 100);
    CHECK(g);
    CHECK_EQ(grants_issue_refresh(g, "OID-A", "client-1", rt), GRANTS_OK);
    CHECK(strncmp(rt, "ckrt.", 5) == 0);
    CHECK_EQ(grants_issue_refresh(g, "oid-b", "client-1", rt2), GRANTS_OK);
    CHECK(strcmp(rt, rt2) != 0);
    CHECK_EQ(grants_redeem_refresh(g, rt, "client-1", oid), GRANTS_OK);
    CHECK_STR(oid, "OID-A");
    /* Used again: refresh tokens are not rotated. */
    CHECK_EQ(grants_redeem_refresh(g, rt, "client-1", oid), GRANTS_OK);
    CHECK_EQ(grants_redeem_refresh(g, rt, "client-2", oid), GRANTS_UNKNOWN);
    CHECK_EQ(grants_redeem_refresh(g, "ckrt.forged", "client-1", oid), GRANTS_UNKNOWN);
    CHECK_EQ(grants_redeem_refresh(g, "eyJhbGciOi.x.y", "client-1", oid), GRANTS_UNKNOWN);
    CHECK(store_list(s, "rt", NULL, NULL, find_token, rt) == 2);
    /* Kept across a restart. */
    grants_free(g);
    store_close(s);
    s = store_open(path, err);
    g = grants_new(s, 100);
    CHECK_EQ(grants_redeem_refresh(g, rt2, "client-1", oid), GRANTS_OK);
    CHECK_STR(oid, "oid-b");
    /* Revoking one user (object ids compare without case) leaves the other. */
    CHECK_EQ(grants_revoke(g, "oid-a"), 1);
    CHECK_EQ(grants_redeem_refresh(g, rt, "client-1", oid), GRANTS_UNKNOWN);
    CHECK_EQ(grants_redeem_refresh(g, rt2, "client-1", oid), GRANTS_OK);
    CHECK_EQ(grants_revoke(g, "oid-a"), 0);
    /* Lifetime from sign-in; a new sign-in clears the user's expired rows. */
    grants_advance_clock(g, 101);
    CHECK_EQ(grants_redeem_refresh(g, rt2, "client-1", oid), GRANTS_EXPIRED);
    CHECK_EQ(grants_issue_refresh(g, "oid-b", "client-1", rt), GRANTS_OK);
    CHECK_EQ(grants_redeem_refresh(g, rt2, "client-1", oid), GRANTS_UNKNOWN);
    CHECK_EQ(grants_redeem_refresh(g, rt, "client-1", oid), GRANTS_OK);
    grants_free(g);
    store_close(s);
    unlink(path);
    char side[160];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

static void device_codes(void)
{
    char err[256], dc[GRANTS_DEVICE_CODE_LEN], uc[GRANTS_USER_CODE_LEN], oid[GRANTS_OID_LEN],
        scope[GRANTS_SCOPE_LEN];
    store_t *s = store_open(":memory:", err);
    grants_t *g = grants_new(s, 100);
    CHECK_EQ(grants_device_start(g, "client-1", "https://h//.default offline_access", dc, uc), GRANTS_OK);
    CHECK_EQ(strlen(uc), 9);
    CHECK(uc[4] == '-');
    CHECK_EQ(grants_device_poll(g, dc, "client-1", oid, scope), GRANTS_PENDING);
    CHECK_EQ(grants_device_poll(g, dc, "client-2", oid, scope), GRANTS_UNKNOWN);
    CHECK_EQ(grants_device_poll(g, "nope", "client-1", oid, scope), GRANTS_UNKNOWN);
    CHECK_EQ(grants_device_approve(g, "BCDF-GHJK-X", "oid-a"), GRANTS_UNKNOWN);
    /* Typed in lower case without the dash. */
    char typed[16];
    size_t t = 0;
    for (const char *p = uc; *p; p++)
        if (*p != '-')
            typed[t++] = (char)tolower((unsigned char)*p);
    typed[t] = '\0';
    CHECK_EQ(grants_device_approve(g, typed, "oid-a"), GRANTS_OK);
    CHECK_EQ(grants_device_approve(g, uc, "oid-b"), GRANTS_UNKNOWN); /* already approved */
    CHECK_EQ(grants_device_poll(g, dc, "client-1", oid, scope), GRANTS_OK);
    CHECK_STR(oid, "oid-a");
    CHECK_STR(scope, "https://h//.default offline_access");
    CHECK_EQ(grants_device_poll(g, dc, "client-1", oid, scope), GRANTS_UNKNOWN); /* once */
    /* Expiry. */
    CHECK_EQ(grants_device_start(g, "client-1", "s", dc, uc), GRANTS_OK);
    grants_advance_clock(g, GRANTS_DEVICE_TTL + 1);
    CHECK_EQ(grants_device_approve(g, uc, "oid-a"), GRANTS_EXPIRED);
    CHECK_EQ(grants_device_poll(g, dc, "client-1", oid, scope), GRANTS_EXPIRED);
    /* A bounded table; expired entries make room. */
    int started = 0;
    while (grants_device_start(g, "client-1", "s", dc, uc) == GRANTS_OK)
        started++;
    CHECK_EQ(started, GRANTS_DEVICE_MAX - 1);
    CHECK_EQ(grants_device_start(g, "client-1", "s", dc, uc), GRANTS_TOO_MANY);
    grants_advance_clock(g, GRANTS_DEVICE_TTL + 61);
    CHECK_EQ(grants_device_start(g, "client-1", "s", dc, uc), GRANTS_OK);
    /* Revoking a user drops its approved, unclaimed code. */
    CHECK_EQ(grants_device_approve(g, uc, "oid-c"), GRANTS_OK);
    CHECK_EQ(grants_revoke(g, "OID-C"), 0);
    CHECK_EQ(grants_device_poll(g, dc, "client-1", oid, scope), GRANTS_UNKNOWN);
    grants_free(g);
    store_close(s);
}

int main(void)
{
    TEST(refresh_tokens);
    TEST(device_codes);
    TEST_MAIN_END();
}
