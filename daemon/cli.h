// The weightdrop command line (README.md, "Other commands"): parses argv with CLI11 and hands
// each command to core/. Exit codes: 0 success, 1 failure, 2 usage.
#pragma once

namespace wd {

int RunCli(int argc, char** argv);

}  // namespace wd
