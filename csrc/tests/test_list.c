/* Unit tests for list: linking, unlinking in any order, walking while
 * removing, and the "on no list" state. */
#include "check.h"
#include "list.h"

static int tests_run;

typedef struct item {
    int v;
    list_node node;
} item;

static int values(list_node *head, int *out, int cap)
{
    int n = 0;
    list_node *p, *t;
    list_foreach (p, t, head)
        if (n < cap)
            out[n++] = list_entry(p, item, node)->v;
    return n;
}

static void link_and_walk(void)
{
    list_node head;
    list_init(&head);
    CHECK(list_empty(&head));
    CHECK(list_first(&head) == NULL);
    item it[4];
    for (int i = 0; i < 4; i++) {
        it[i].v = i;
        list_init(&it[i].node);
        CHECK(!list_linked(&it[i].node));
    }
    list_insert_tail(&head, &it[1].node);
    list_insert_tail(&head, &it[2].node);
    list_insert_head(&head, &it[0].node);
    list_insert_tail(&head, &it[3].node);
    int got[8];
    CHECK_EQ(values(&head, got, 8), 4);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(got[i], i);
    CHECK(list_entry(list_first(&head), item, node) == &it[0]);
    CHECK(list_linked(&it[2].node));
    /* Backwards through prev, too. */
    CHECK(list_entry(head.prev, item, node) == &it[3]);
    CHECK(list_entry(it[3].node.prev, item, node) == &it[2]);
}

static void remove_anywhere(void)
{
    list_node head;
    list_init(&head);
    item it[5];
    for (int i = 0; i < 5; i++) {
        it[i].v = i;
        list_insert_tail(&head, &it[i].node);
    }
    list_remove(&it[0].node); /* first */
    list_remove(&it[4].node); /* last */
    list_remove(&it[2].node); /* middle */
    CHECK(!list_linked(&it[2].node));
    list_remove(&it[2].node); /* twice: harmless */
    int got[8];
    CHECK_EQ(values(&head, got, 8), 2);
    CHECK_EQ(got[0], 1);
    CHECK_EQ(got[1], 3);
    list_remove(&it[1].node);
    list_remove(&it[3].node);
    CHECK(list_empty(&head));
    CHECK(head.next == &head && head.prev == &head);
}

static void remove_while_walking(void)
{
    list_node head;
    list_init(&head);
    item it[6];
    for (int i = 0; i < 6; i++) {
        it[i].v = i;
        list_insert_tail(&head, &it[i].node);
    }
    list_node *p, *t;
    list_foreach (p, t, &head) {
        item *x = list_entry(p, item, node);
        if (x->v % 2 == 0)
            list_remove(p);
    }
    int got[8];
    CHECK_EQ(values(&head, got, 8), 3);
    CHECK_EQ(got[0], 1);
    CHECK_EQ(got[1], 3);
    CHECK_EQ(got[2], 5);
    list_foreach (p, t, &head)
        list_remove(p);
    CHECK(list_empty(&head));
}

int main(void)
{
    TEST(link_and_walk);
    TEST(remove_anywhere);
    TEST(remove_while_walking);
    TEST_MAIN_END();
}
