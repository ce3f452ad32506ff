// weightdrop: parse the command line and hand over (Ninja's ninja.cc).
#include "daemon/cli.h"

int main(int argc, char** argv) { return wd::RunCli(argc, argv); }
