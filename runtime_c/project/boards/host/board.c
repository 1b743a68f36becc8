/* The protocol firmware as a host program, for tests and for trying a model without a board:
 * the "UART" is one TCP connection on 127.0.0.1. It listens on the port in the environment
 * variable TT_PORT (default 0: any free port), prints "listening on 127.0.0.1:PORT" on stdout,
 * serves one connection and exits when it closes. */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tt_board.h"
#include "tt_io.h"
#include "tt_proto.h"

const tt_board_info tt_board = {"host", 0u, TT_CYCLES_NONE};

static int conn = -1;
static uint8_t inbuf[4096];
static size_t in_len, in_pos;

static void die(const char *what)
{
    perror(what);
    exit(2);
}

void tt_board_init(void)
{
    signal(SIGPIPE, SIG_IGN); /* a closed connection shows up as a failed write instead */
    const char *env = getenv("TT_PORT");
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0) die("socket");
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((uint16_t)(env != NULL ? atoi(env) : 0));
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(listener, 1) < 0) die("listen");
    socklen_t len = sizeof addr;
    if (getsockname(listener, (struct sockaddr *)&addr, &len) < 0) die("getsockname");
    printf("listening on 127.0.0.1:%u\n", (unsigned)ntohs(addr.sin_port));
    fflush(stdout);
    conn = accept(listener, NULL, NULL);
    if (conn < 0) die("accept");
    /* Frames go out in several small writes: without this, Nagle's algorithm and the peer's
     * delayed ACK hold each reply back for tens of milliseconds. */
    setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    close(listener);
}

void tt_board_write(const uint8_t *data, size_t n)
{
    while (n > 0 && conn >= 0) {
        ssize_t sent = send(conn, data, n, 0);
        if (sent <= 0) return; /* the peer went away; the next read reports it */
        data += sent;
        n -= (size_t)sent;
    }
}

int tt_board_read(void)
{
    if (in_pos == in_len) {
        ssize_t got = conn >= 0 ? recv(conn, inbuf, sizeof inbuf, 0) : 0;
        if (got <= 0) return -1;
        in_len = (size_t)got;
        in_pos = 0;
    }
    return inbuf[in_pos++];
}

uint64_t tt_board_cycles(void)
{
    return 0u; /* host timings say nothing about the MCU: report none */
}

uint32_t tt_board_stack_bytes(void)
{
    return 0u;
}

void tt_board_exit(int code)
{
    exit(code);
}

/* The rest of tt_io that the Cortex-M builds take from tt_core_cm7.c. */
uint32_t tt_stack_peak_bytes(void)
{
    return 0u;
}

uint64_t tt_cycles(void)
{
    return 0u;
}
