// UnixLiveness: the host's "did the app close its end?" question, asked of
// sock_diag through one netlink socket kept open across questions.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stack/host/unix_liveness.h"

namespace ustack::host {
namespace {

ino_t inode_of(int fd) {
    struct stat st {};
    EXPECT_EQ(::fstat(fd, &st), 0);
    return st.st_ino;
}

TEST(UnixLiveness, AnOpenEndExistsAndAClosedOneNoLonger) {
    UnixLiveness liveness;
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    const ino_t app_end = inode_of(pair[1]);
    EXPECT_TRUE(liveness.exists(app_end));
    ::close(pair[1]);
    EXPECT_FALSE(liveness.exists(app_end));
    EXPECT_TRUE(liveness.exists(inode_of(pair[0])));
    ::close(pair[0]);
}

TEST(UnixLiveness, ManyQuestionsOnOneNetlinkSocketEachGetTheirOwnAnswer) {
    // Alternating answers: a reply read for the wrong question (a stale one
    // left in the socket) would show as a wrong answer here.
    UnixLiveness liveness;
    for (int i = 0; i < 200; ++i) {
        int pair[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
        const ino_t closed = inode_of(pair[1]);
        ::close(pair[1]);
        ASSERT_FALSE(liveness.exists(closed)) << "question " << i;
        ASSERT_TRUE(liveness.exists(inode_of(pair[0]))) << "question " << i;
        ::close(pair[0]);
    }
}

TEST(UnixLiveness, AReusedFdNumberIsNeitherAskedNorClosed) {
    // inproc: the program closes every fd it did not open, and the number
    // of the liveness socket comes back for one of its own files.
    UnixLiveness liveness;
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    ASSERT_TRUE(liveness.exists(inode_of(pair[0])));  // the netlink socket is open now
    int netlink_fd = -1;
    for (int fd = 3; fd < 1024 && netlink_fd < 0; ++fd) {
        struct stat st {};
        int domain = 0;
        socklen_t len = sizeof domain;
        if (fd != pair[0] && fd != pair[1] && ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
            ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_NETLINK) {
            netlink_fd = fd;
        }
    }
    ASSERT_GE(netlink_fd, 0);
    ::close(netlink_fd);
    int programs[2];
    ASSERT_EQ(::pipe(programs), 0);
    const int reused = programs[0] == netlink_fd ? programs[0] : programs[1];
    ASSERT_EQ(reused, netlink_fd) << "the pipe did not get the freed number";
    const ino_t pipe_inode = inode_of(reused);

    const ino_t closed = inode_of(pair[1]);
    ::close(pair[1]);
    EXPECT_FALSE(liveness.exists(closed));  // asked on a new netlink socket
    EXPECT_EQ(inode_of(reused), pipe_inode) << "the program's fd was closed or replaced";
    ::close(pair[0]);
    ::close(programs[0]);
    ::close(programs[1]);
}

}  // namespace
}  // namespace ustack::host
