/* startup_cortexm.c -- reset code for the QEMU Cortex-M boards (any ARMv6-M..v8.1-M core).
 *
 * The vector table holds the initial stack pointer (top of the DATA region, see cortexm.ld)
 * and the handlers. Reset enables the FPU (and Helium) when built for it, copies .data from
 * its load address, clears .bss (not .bss.dgc_big), and calls main(argc, argv) with the
 * semihosting command line; main's return value becomes QEMU's exit status. Any fault
 * prints its exception number and exits with DGC_EXIT_FAULT. */
#include <stdint.h>

#include "dgc_harness.h"
#include "semihost.h"

extern uint32_t __data_load[], __data_start[], __data_end[];
extern uint32_t __bss_start[], __bss_end[], __stack_top[];
int main(int argc, char **argv);

#define CPACR (*(volatile uint32_t *)0xE000ED88u)

static void put_uint(char *out, unsigned v)
{
    char tmp[12];
    int n = 0;
    do tmp[n++] = (char)('0' + v % 10u); while ((v /= 10u) != 0);
    while (n) *out++ = tmp[--n];
    *out = '\0';
}

void dgc_fault_handler(void)
{
    unsigned ipsr;
    char num[12];
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    put_uint(num, ipsr & 0x1FFu);
    dgc_semihost_write0("dgc: CPU fault, exception ");
    dgc_semihost_write0(num);
    dgc_semihost_write0("\n");
    dgc_semihost_exit(DGC_EXIT_FAULT);
}

/* Kept out of Reset_Handler so no FP register is touched before the FPU is on. */
static void __attribute__((noinline, noreturn)) start(void)
{
    for (uint32_t *s = __data_load, *d = __data_start; d < __data_end;) *d++ = *s++;
    for (uint32_t *d = __bss_start; d < __bss_end;) *d++ = 0;
    int argc;
    char **argv;
    dgc_semihost_args(&argc, &argv);
    dgc_semihost_exit(main(argc, argv));
}

void __attribute__((noreturn)) Reset_Handler(void)
{
#ifdef __ARM_FP
    CPACR |= 0xFu << 20;  /* CP10 and CP11 full access: FPU and MVE */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    start();
}

typedef void (*vector_t)(void);

/* 16 system exceptions; interrupts are never enabled, so no IRQ vectors follow. */
__attribute__((section(".vectors"), used)) const vector_t dgc_vectors[16] = {
    (vector_t)__stack_top, Reset_Handler,
    dgc_fault_handler, dgc_fault_handler, dgc_fault_handler, dgc_fault_handler,
    dgc_fault_handler, dgc_fault_handler, 0, 0, 0,
    dgc_fault_handler, dgc_fault_handler, 0, dgc_fault_handler, dgc_fault_handler,
};
