# Socket kernel: socket_state (twin: fastsess/_speedups_py.py).
#
# Whether an idle connection's socket is still quiet, found without sending
# anything: one non-blocking recv(MSG_PEEK) that leaves any waiting byte for
# the driver.  An idle connection has nothing to read unless the server sent
# EOF, a termination notice, or (PostgreSQL) an asynchronous message.

cdef extern from *:
    """
    #ifndef _WIN32
    #include <errno.h>
    #include <sys/socket.h>
    #include <sys/types.h>
    #endif
    #if defined(_WIN32) || !defined(MSG_DONTWAIT)
    /* No non-blocking peek without changing the socket's mode: cannot tell. */
    static int fs_socket_state(long fd) { (void)fd; return 0; }
    #else
    static int fs_socket_state(long fd) {
        unsigned char c;
        ssize_t n;
        if (fd < 0)
            return 0;
        do {
            n = recv((int)fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR);
        if (n > 0)
            return 1 + (int)c;
        if (n == 0)
            return -1;  /* end of stream: the peer closed it */
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -1;  /* reset, not a socket, bad descriptor: unusable */
    }
    #endif
    """
    int fs_socket_state(long fd)


def socket_state(long fd):
    """The state of the idle socket ``fd``, read without consuming anything:
    0 quiet (or ``fd`` < 0, or a platform where it cannot be told), -1
    closed or errored, else 1 + the value of the first byte waiting."""
    return fs_socket_state(fd)
