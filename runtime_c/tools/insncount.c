/* QEMU TCG plugin that counts executed guest instructions; run_qemu() loads it with
 * `-plugin libinsncount.so` and reads the total from the file named by $INSNCOUNT_OUT.
 * If $INSNCOUNT_PROFILE names a file, it also writes one line per translated block,
 * "<start address> <instructions executed in it>", which run_qemu(profile=True) sums per ELF
 * function symbol (a block ends at every branch, so it never spans two functions).
 * Debian's QEMU 7.2 supports plugins but ships no qemu-plugin.h, so the few v1 API prototypes
 * we need are copied by hand from QEMU 7.2's include/qemu/qemu-plugin.h. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define QEMU_PLUGIN_EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                                  qemu_plugin_vcpu_tb_trans_cb_t cb);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb,
                                                     enum qemu_plugin_op op, void *ptr,
                                                     uint64_t imm);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb,
                                           void *userdata);

QEMU_PLUGIN_EXPORT int qemu_plugin_version = 1; /* QEMU_PLUGIN_VERSION of QEMU 7.2 */

static uint64_t total;

/* Per translated block: how often it ran. A block translated twice gets two records; the
 * profile's reader sums them by address. */
struct block {
    uint64_t vaddr, n_insns, execs;
    struct block *next;
};
static struct block *blocks;
static int profiling;

/* Inline adds only (no callbacks): nearly free, and exact unless a block faults midway. */
static void on_tb_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &total, n);
    if (!profiling) return;
    struct block *b = calloc(1, sizeof *b);
    if (b == NULL) return;
    b->vaddr = qemu_plugin_tb_vaddr(tb);
    b->n_insns = n;
    b->next = blocks;
    blocks = b;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->execs, 1);
}

static void write_profile(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) return;
    for (struct block *b = blocks; b != NULL; b = b->next) {
        if (b->execs) {
            fprintf(f, "%llx %llu\n", (unsigned long long)b->vaddr,
                    (unsigned long long)(b->execs * b->n_insns));
        }
    }
    fclose(f);
}

static void write_count_at_exit(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    const char *profile = getenv("INSNCOUNT_PROFILE");
    if (profiling && profile != NULL) write_profile(profile);
    const char *path = getenv("INSNCOUNT_OUT");
    FILE *f = path ? fopen(path, "w") : NULL;
    if (f == NULL) return;
    fprintf(f, "insns_total %llu\n", (unsigned long long)total);
    fclose(f);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                                           char **argv)
{
    (void)info;
    (void)argc;
    (void)argv;
    profiling = getenv("INSNCOUNT_PROFILE") != NULL;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_translate);
    qemu_plugin_register_atexit_cb(id, write_count_at_exit, NULL);
    return 0;
}
