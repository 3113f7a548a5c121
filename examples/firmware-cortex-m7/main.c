/* main.c -- runs the dgc-compiled digits CNN once on an embedded image and prints the result
 * over semihosting (newlib's rdimon: printf goes to the debugger / QEMU's console). */
#include "digits_demo.h"  /* run_digits_demo(): the model call and the printing */

extern void initialise_monitor_handles(void);

int main(void)
{
    initialise_monitor_handles();
    return run_digits_demo();
}
