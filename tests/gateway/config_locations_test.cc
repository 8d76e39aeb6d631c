// Every config error names the line and column of the value that is wrong
// (regressions: a bad baud or a reserved id reported at the [[scanner]]
// header; a relative socket or state_dir reported with no line at all).
#include <gtest/gtest.h>

#include "daemon/daemon_config.h"

namespace portier::daemon {
namespace {

TEST(ConfigLocations, ErrorsPointAtTheValueThatIsWrong) {
  struct Case {
    const char* text;
    const char* error;
  };
  for (auto c : {
           Case{"[[scanner]]\nid = \"s0\"\npath = \"/dev/ttyACM0\"\nbaud = 12345\n",
                "t.toml:4:8: scanner[1].baud: baud 12345"},
           Case{"[[scanner]]\nid = \"terminal\"\npath = \"/dev/ttyACM0\"\n",
                "t.toml:2:6: scanner[1].id: 'terminal' is reserved"},
           Case{"[[scanner]]\nid = \"s0\"\npath = \"dev/ttyACM0\"\n",
                "t.toml:3:8: scanner[1].path: an absolute device path is required"},
           Case{"[[scanner]]\nid = \"s0\"\ntype = \"laser\"\n",
                "t.toml:3:8: scanner[1].type: must be"},
           Case{"[[reader]]\nid = \"bad id\"\ntype = \"simulated\"\n", "t.toml:2:6: reader[1].id"},
           Case{"socket = \"relative.sock\"\n", "t.toml:1:10: socket: must be an absolute path"},
           Case{"state_dir = \"var/lib\"\n", "t.toml:1:13: state_dir: must be an absolute path"},
           Case{"policy = \"p.toml\"\n", "t.toml:1:10: policy: must be an absolute path"},
           Case{"audit_log = \"a.jsonl\"\n", "t.toml:1:13: audit_log: must be an absolute path"},
       }) {
    auto r = parse_config(c.text, "t.toml");
    ASSERT_FALSE(r) << c.text;
    EXPECT_NE(r.error().message().find(c.error), std::string::npos)
        << "config:\n"
        << c.text << "error: " << r.error().message();
  }
}

}  // namespace
}  // namespace portier::daemon
