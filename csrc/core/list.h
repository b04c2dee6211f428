/* list: intrusive doubly linked lists, circular with a head node (the idea
 * of libuv's queue.h). An object that sits on a list embeds a list_node;
 * the list owns nothing and allocates nothing, so linking and unlinking
 * cannot fail, and an object unlinks itself in O(1) without knowing which
 * list holds it.
 *
 * A node that is on no list points at itself (list_init, and list_remove
 * leaves it so), so removing twice is harmless and list_linked says
 * whether it is on one. */
#ifndef CK_LIST_H
#define CK_LIST_H
#include <stddef.h>

typedef struct list_node {
    struct list_node *prev, *next;
} list_node;

/* A head, or a node on no list. */
static inline void list_init(list_node *n)
{
    n->prev = n->next = n;
}

static inline int list_empty(const list_node *head)
{
    return head->next == head;
}

/* Whether a node is on a list (for a head: whether the list has nodes). */
static inline int list_linked(const list_node *n)
{
    return n->next != n;
}

static inline void list_insert_head(list_node *head, list_node *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}

static inline void list_insert_tail(list_node *head, list_node *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline void list_remove(list_node *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    list_init(n);
}

/* The first node, or NULL when the list is empty. */
static inline list_node *list_first(const list_node *head)
{
    return list_empty(head) ? NULL : head->next;
}

/* The object a node is embedded in. */
#define list_entry(node, type, member) ((type *)(void *)((char *)(node)-offsetof(type, member)))

/* Walks the list; the body may remove `pos` (and only `pos`): the next
 * node is taken before the body runs. */
#define list_foreach(pos, tmp, head)                                                                         \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); (pos) = (tmp), (tmp) = (pos)->next)

#endif
