/* cut_lfstack: the parts of the lock-free stack that are not on anyone's hot path (see cut_lfstack.h). */
#include <stdlib.h>

#include "common/cut_lfstack.h"

struct cut_lfs_node *cut_lfs_reverse(struct cut_lfs_node *list) {
  struct cut_lfs_node *out = NULL;
  while (list) {
    struct cut_lfs_node *next = list->next;
    list->next = out;
    out = list;
    list = next;
  }
  return out;
}

struct cut_lfs_node *cut_lfs_take_fifo(struct cut_lfs *s, memory_order order) {
  return cut_lfs_reverse(cut_lfs_take_all(s, order));
}

void cut_lfs_free_list(struct cut_lfs_node *list) {
  while (list) {
    struct cut_lfs_node *next = list->next;
    free(list);
    list = next;
  }
}
