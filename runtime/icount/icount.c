/* icount.c -- a QEMU TCG plugin: exact executed-instruction counts between two markers.
 *
 * Usage: qemu-system-arm ... -plugin icount.so,begin=0xADDR,end=0xADDR,out=FILE
 *        qemu-aarch64 / qemu-arm -plugin icount.so,begin=...,end=...,out=FILE prog args
 * (system emulation with one CPU, or user mode with a single-threaded program: addresses are
 * the guest's virtual addresses, i.e. the static executable's symbol addresses).
 *
 * Every guest instruction gets an inline counter (one per instruction address), so the
 * counts are exact and do not depend on how QEMU splits code into translation blocks.
 * When the instruction at `begin` executes, all counters are zeroed; when the instruction
 * at `end` executes, the region's counts are appended to FILE:
 *     region <k> <total instructions>
 *     <address hex> <times executed>      (one line per executed instruction address)
 * A program may run several regions (one per model); FILE gets one block per region.
 *
 * Debian's QEMU 7.2 exports the plugin API (version 1) but ships no qemu-plugin.h, so the
 * few types and functions used here are declared below, as that header declares them. */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the subset of qemu-plugin.h (API version 1, QEMU 7.2) that this plugin uses ---- */
#define QEMU_PLUGIN_EXPORT __attribute__((visibility("default")))
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t {
    const char *target_name;
    struct { int min; int cur; } version;
    bool system_emulation;
    union { struct { int smp_vcpus; int max_vcpus; } system; };
} qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn,
                                                enum qemu_plugin_op op, void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
                                            qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
void qemu_plugin_outs(const char *string);
QEMU_PLUGIN_EXPORT int qemu_plugin_version = 1;
/* ---- end of the declarations ---- */

/* One counter per distinct instruction address, in an open-addressing table that never
 * moves (the inline ops hold pointers into it). 2^20 slots: far more than a firmware has. */
#define SLOTS (1u << 20)
static uint64_t slot_addr[SLOTS];
static uint64_t slot_count[SLOTS];
static bool slot_used[SLOTS];
static size_t n_used;

static uint64_t begin_addr, end_addr;
static const char *out_path;
static FILE *out;
static unsigned regions;
static bool failed;

static uint64_t *counter_for(uint64_t addr)
{
    uint32_t h = (uint32_t)((addr >> 1) * 2654435761u) & (SLOTS - 1);
    while (slot_used[h] && slot_addr[h] != addr)
        h = (h + 1) & (SLOTS - 1);
    if (!slot_used[h]) {
        if (n_used + 1 >= SLOTS / 2) {  /* keep probing short; never expected */
            failed = true;
            return NULL;
        }
        slot_used[h] = true;
        slot_addr[h] = addr;
        n_used++;
    }
    return &slot_count[h];
}

static void on_begin(unsigned int vcpu, void *udata)
{
    memset(slot_count, 0, sizeof slot_count);
}

static void on_end(unsigned int vcpu, void *udata)
{
    uint64_t total = 0;
    for (size_t i = 0; i < SLOTS; i++)
        total += slot_count[i];
    fprintf(out, "region %u %" PRIu64 "\n", regions++, total);
    for (size_t i = 0; i < SLOTS; i++)
        if (slot_count[i])
            fprintf(out, "%" PRIx64 " %" PRIu64 "\n", slot_addr[i], slot_count[i]);
    fflush(out);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t addr = qemu_plugin_insn_vaddr(insn);
        uint64_t *counter = counter_for(addr);
        if (counter)
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64,
                                                       counter, 1);
        if (addr == begin_addr)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
        if (addr == end_addr)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
}

static void at_exit(qemu_plugin_id_t id, void *udata)
{
    if (failed)
        qemu_plugin_outs("icount: too many distinct instruction addresses; counts incomplete\n");
    fprintf(out, failed ? "incomplete\n" : "done %u\n", regions);
    fclose(out);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "begin=", 6) == 0)
            begin_addr = strtoull(argv[i] + 6, NULL, 0);
        else if (strncmp(argv[i], "end=", 4) == 0)
            end_addr = strtoull(argv[i] + 4, NULL, 0);
        else if (strncmp(argv[i], "out=", 4) == 0)
            out_path = argv[i] + 4;
    }
    if (!begin_addr || !end_addr || !out_path
        || (info->system_emulation && info->system.smp_vcpus != 1)) {
        qemu_plugin_outs("icount: needs begin=ADDR,end=ADDR,out=FILE (and 1 CPU in system mode)\n");
        return -1;
    }
    out = fopen(out_path, "w");
    if (!out) {
        qemu_plugin_outs("icount: cannot open the out= file\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
