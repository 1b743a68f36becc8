/* ARM semihosting calls (QEMU, or a debugger on real hardware): operation number and argument
 * block as in ARM's "Semihosting for AArch32 and AArch64"; returns r0. */
#ifndef TT_SEMIHOST_H
#define TT_SEMIHOST_H

#define TT_SYS_OPEN 0x01
#define TT_SYS_CLOSE 0x02
#define TT_SYS_WRITE 0x05
#define TT_SYS_READ 0x06
#define TT_SYS_SEEK 0x0A

int tt_semihost_call(int op, const void *arg);

#endif
