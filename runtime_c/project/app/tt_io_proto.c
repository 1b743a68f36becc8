/* tt_io for the protocol firmware: text goes out as TT_MSG_LOG frames (the link carries only
 * frames), and tt_exit, which the startup code also calls on a CPU fault, keeps answering
 * requests with TT_ERR_HALTED instead of going silent. tt_stack_peak_bytes and tt_cycles come
 * from the board's side (cortex_m/tt_core_cm7.c, or board.c on the host). */
#include <string.h>

#include "tt_io.h"
#include "tt_proto.h"

void tt_puts(const char *s)
{
    tt_proto_send(TT_MSG_LOG, 0u, s, strlen(s));
}

void tt_exit(int code)
{
    tt_proto_halt(code);
}
