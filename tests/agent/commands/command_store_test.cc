// The command store against a real SQLite file: a nonce and a start are
// recorded together or not at all, results and the policy version survive a
// restart, old nonces go, and a daemon killed while a command runs (a child
// process, SIGKILL from inside the handler) never runs it a second time.
#include "agent/commands/command_store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "agent/commands/command_verifier.h"
#include "command_test_util.h"

namespace portier::commands {
namespace {

using std::chrono::hours;
using test::Dir;

const TimePoint kNow = TimePoint{} + hours(500000);

std::unique_ptr<CommandStore> open_store(const std::string& path) {
  auto s = CommandStore::open(path);
  EXPECT_TRUE(s) << s.error().message();
  return s ? std::move(*s) : nullptr;
}

CommandStart start(const std::string& id, const std::string& nonce) {
  return {id, "digest-" + id, "ping", nonce, kNow + hours(1), kNow + hours(24)};
}

TEST(CommandStoreTest, ANonceAndAStartAreRecordedTogetherOrNotAtAll) {
  Dir dir;
  auto store = open_store(dir.path + "/c.db");
  ASSERT_TRUE(store->begin(start("c-1", "nonce-1")));
  // A used nonce: the new command is not recorded either.
  auto again = store->begin(start("c-2", "nonce-1"));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::already_exists);
  EXPECT_EQ(again.error().why, "nonce already used");
  EXPECT_FALSE(*store->find("c-2"));
  // A recorded command id: its fresh nonce is not consumed.
  auto same_id = store->begin(start("c-1", "nonce-2"));
  ASSERT_FALSE(same_id);
  EXPECT_EQ(same_id.error().why, "command id already recorded");
  EXPECT_FALSE(*store->nonce_used("nonce-2"));
}

TEST(CommandStoreTest, ResultsAndThePolicyVersionSurviveAReopen) {
  Dir dir;
  const std::string path = dir.path + "/c.db";
  {
    auto store = open_store(path);
    ASSERT_TRUE(store->begin(start("c-1", "n1")));
    ASSERT_TRUE(store->finish("c-1", {true, "", "out\0put"}, 7));
    ASSERT_TRUE(store->begin(start("c-2", "n2")));
    ASSERT_TRUE(store->finish("c-2", {false, "no such device", ""}));
    // Finished once only.
    EXPECT_FALSE(store->finish("c-2", {true, "", ""}));
  }
  auto store = open_store(path);
  EXPECT_TRUE(store->interrupted().empty());
  auto c1 = store->find("c-1");
  ASSERT_TRUE(c1 && *c1);
  EXPECT_TRUE((*c1)->finished);
  EXPECT_TRUE((*c1)->outcome.ok);
  EXPECT_EQ((*c1)->digest, "digest-c-1");
  auto c2 = store->find("c-2");
  ASSERT_TRUE(c2 && *c2);
  EXPECT_FALSE((*c2)->outcome.ok);
  EXPECT_EQ((*c2)->outcome.message, "no such device");
  EXPECT_EQ(*store->policy_version(), 7u);
  EXPECT_TRUE(*store->nonce_used("n1"));
}

// Regression (review of the management link): the version of a policy
// replacement was recorded only when it finished, after the file was
// replaced; a restart in between let a lower, still valid ReplacePolicy roll
// the policy back. The version counts as installed once it started.
TEST(CommandStoreTest, APolicyReplacementCutShortCountsItsVersionAsInstalled) {
  Dir dir;
  const std::string path = dir.path + "/c.db";
  {
    auto store = open_store(path);
    ASSERT_TRUE(store->begin(start("p-5", "n5")));
    ASSERT_TRUE(store->finish("p-5", {true, "", ""}, 5));
    auto s = start("p-9", "n9");
    s.policy_version = 9;
    ASSERT_TRUE(store->begin(s));
    // portierd is killed here: the file may already hold version 9.
  }
  auto store = open_store(path);
  EXPECT_EQ(*store->policy_version(), 9u);
  ASSERT_EQ(store->interrupted().size(), 1u);
  // A refused replacement (started, then failed) leaves the version alone.
  auto s = start("p-12", "n12");
  s.policy_version = 12;
  ASSERT_TRUE(store->begin(s));
  ASSERT_TRUE(store->finish("p-12", {false, "the policy does not load", ""}));
  auto again = open_store(path);
  EXPECT_EQ(*again->policy_version(), 9u);
}

TEST(CommandStoreTest, OldNoncesAndResultsAreForgotten) {
  Dir dir;
  auto store = open_store(dir.path + "/c.db");
  ASSERT_TRUE(store->begin(start("c-1", "n1")));
  ASSERT_TRUE(store->finish("c-1", {true, "", ""}));
  EXPECT_EQ(*store->forget(kNow + hours(1)), 0u);
  EXPECT_EQ(*store->forget(kNow + hours(2)), 1u);  // the nonce
  EXPECT_FALSE(*store->nonce_used("n1"));
  EXPECT_TRUE(*store->find("c-1"));
  EXPECT_EQ(*store->forget(kNow + hours(25)), 1u);  // the result
  EXPECT_FALSE(*store->find("c-1"));
}

TEST(CommandStoreTest, AWorldReadableFileIsMadeOwnerOnly) {
  Dir dir;
  const std::string path = dir.path + "/c.db";
  { open_store(path); }
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto store = open_store(path);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_TRUE(store->nonce_used("n"));  // connected: its -wal exists
  ASSERT_EQ(::stat((path + "-wal").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(CommandStoreTest, ASymlinkOrAnUnreadableFileIsAClearError) {
  Dir dir;
  ASSERT_EQ(::symlink("/etc/passwd", (dir.path + "/link.db").c_str()), 0);
  auto s = CommandStore::open(dir.path + "/link.db");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("link.db"), std::string::npos) << s.error().message();
  auto junk = dir.path + "/junk.db";
  ASSERT_TRUE(portier::test::write_pki_file(junk, std::string(8192, 'x'), 0600));
  s = CommandStore::open(junk);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("junk.db"), std::string::npos) << s.error().message();
}

// Idle, the store holds no connection (no page cache, no -shm mapping):
// open() recovers and closes; the first command connects. Every connection
// checks the file again: one a local app swapped for a symlink meanwhile is
// refused, named, and nothing is read through it.
TEST(CommandStoreTest, IdleItHoldsNoConnectionAndEachConnectionChecksTheFileAgain) {
  Dir dir;
  const std::string path = dir.path + "/c.db";
  auto store = open_store(path);
  ASSERT_TRUE(store);
  EXPECT_FALSE(std::filesystem::exists(path + "-shm")) << "a connection was kept while idle";
  ASSERT_TRUE(store->begin(start("c-1", "n1")));
  EXPECT_TRUE(std::filesystem::exists(path + "-shm"));
  ASSERT_TRUE(store->finish("c-1", {true, "", "ok"}));

  auto other = open_store(dir.path + "/other.db");
  ASSERT_TRUE(other);
  std::filesystem::remove(dir.path + "/other.db-shm");
  // Swapped while the other store was idle: refused at its next connection.
  ASSERT_EQ(::rename(path.c_str(), (dir.path + "/moved.db").c_str()), 0);
  ASSERT_EQ(::unlink((dir.path + "/other.db").c_str()), 0);
  ASSERT_EQ(::symlink((dir.path + "/moved.db").c_str(), (dir.path + "/other.db").c_str()), 0);
  auto found = other->find("c-1");
  ASSERT_FALSE(found) << "read a command through a symlink";
  EXPECT_NE(found.error().message().find("other.db"), std::string::npos) << found.error().message();
  // Put back: it connects and works again.
  ASSERT_EQ(::unlink((dir.path + "/other.db").c_str()), 0);
  auto again = other->find("c-1");
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_FALSE(*again);
}

// The daemon, killed while a verified command runs: in a child process the
// handler SIGKILLs its own process. The restarted store reports it
// interrupted, a repeat gets that, and nothing runs a second time.
class KillingHandlers : public test::CountingHandlers {
 public:
  Result<std::string> ping(const v1::Ping&) override {
    ::kill(::getpid(), SIGKILL);
    return std::string("unreachable");
  }
};

TEST(CommandStoreTest, ACommandKilledMidRunIsNeverRunAgain) {
  Dir dir;
  auto pki = portier::test::TestPki::create(dir.path);
  ASSERT_TRUE(pki) << pki.error().message();
  auto leaf = pki->issue({"fleet-commands", crypto::CertUsage::command_signing});
  ASSERT_TRUE(leaf);
  auto fleet = test::Fleet::from(*leaf);
  const TimePoint now = pki->made_at();
  v1::Command c;
  c.set_command_id("c-1");
  c.set_target_terminal("atm-1");
  c.set_nonce(test::random_nonce());
  *c.mutable_not_before() = test::timestamp(now);
  *c.mutable_expires() = test::timestamp(now + hours(1));
  c.mutable_ping()->set_text("hi");
  const std::string bytes = fleet.sign(c);
  VerifierOptions o;
  o.terminal_id = "atm-1";
  o.trust_anchors = {pki->root()};
  o.clock = [now] { return now; };
  const std::string path = dir.path + "/c.db";

  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto s = CommandStore::open(path);
    if (!s) ::_exit(2);
    KillingHandlers handlers;
    CommandExecutor executor(handlers, **s);
    test::KeptAudit audit;
    CommandVerifier verifier(o, **s, executor, audit);
    verifier.handle(bytes, "mqtt");
    ::_exit(3);  // not reached: the handler killed the process
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;

  auto store = open_store(path);
  ASSERT_EQ(store->interrupted().size(), 1u);
  EXPECT_EQ(store->interrupted()[0].command_id, "c-1");
  test::CountingHandlers handlers;
  CommandExecutor executor(handlers, *store);
  test::KeptAudit audit;
  CommandVerifier verifier(o, *store, executor, audit);
  auto r = verifier.handle(bytes, "mqtt");
  EXPECT_EQ(r.status(), v1::CommandResult::FAILED);
  EXPECT_EQ(r.message(), kInterrupted);
  EXPECT_TRUE(r.repeated_command());
  EXPECT_EQ(handlers.runs(), 0);
  // Its nonce stays consumed: the same command under another id is refused.
  c.set_command_id("c-2");
  r = verifier.handle(fleet.sign(c), "mqtt");
  EXPECT_EQ(r.status(), v1::CommandResult::REFUSED);
  EXPECT_EQ(r.message(), "nonce already used");
  EXPECT_EQ(handlers.runs(), 0);
}

}  // namespace
}  // namespace portier::commands
