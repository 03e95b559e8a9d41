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

}  // namespace
}  // namespace ustack::host
