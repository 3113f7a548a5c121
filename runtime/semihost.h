/* semihost.h -- the few Arm semihosting calls the bare-metal harness needs.
 *
 * A `bkpt 0xAB` with an operation number in r0 and a parameter block in r1 is served by
 * the debugger or, here, by QEMU (-semihosting-config enable=on,target=native): files are
 * opened on the host, and SYS_EXIT_EXTENDED makes QEMU exit with the program's status. */
#ifndef DGC_SEMIHOST_H
#define DGC_SEMIHOST_H

#include <stddef.h>

/* Fills argc and argv from SYS_GET_CMDLINE ("prog dir": argv[1] is the rest after the
 * first space, so the directory may contain spaces). */
void dgc_semihost_args(int *argc, char ***argv);
/* Prints a NUL-terminated string on the host (QEMU: its stderr). */
void dgc_semihost_write0(const char *s);
/* Ends the program; QEMU exits with `status`. Never returns. */
void dgc_semihost_exit(int status) __attribute__((noreturn));

#endif /* DGC_SEMIHOST_H */
