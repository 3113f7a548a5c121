/* startup.c -- reset code for a Cortex-M7 (QEMU mps2-an500): vector table, FPU on, .data
 * copied from flash, .bss cleared, main() called, then exit() (semihosting, via rdimon). */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[], __stack_top[];
int main(void);

/* Kept out of Reset_Handler: no FP register may be touched before the FPU is enabled. */
static void __attribute__((noinline, noreturn)) start(void)
{
    for (uint32_t *s = __data_load, *d = __data_start; d < __data_end;) *d++ = *s++;
    for (uint32_t *d = __bss_start; d < __bss_end;) *d++ = 0;
    exit(main());
}

void __attribute__((noreturn)) Reset_Handler(void)
{
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;  /* CPACR: CP10, CP11 full access */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    start();
}

/* newlib's exit() calls _fini (crti/crtn are left out with -nostartfiles) */
void _init(void) {}
void _fini(void) {}

static void Fault_Handler(void)
{
    abort();  /* semihosting exit with a failure */
}

typedef void (*vector_t)(void);
__attribute__((section(".vectors"), used)) const vector_t vectors[16] = {
    (vector_t)__stack_top, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler,
};
