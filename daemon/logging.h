// Logging: spdlog set up for where the daemon runs — plain lines on a
// terminal, syslog priority prefixes ("<6>") under systemd's journal
// (JOURNAL_STREAM set), or JSON lines when asked.
#pragma once

#include <string>

#include "config/daemon_config.h"
#include "core/status.h"

namespace wd {

// Configures the default spdlog logger. Safe to call again (SIGHUP).
Status SetupLogging(const std::string& level, LogFormat format);

}  // namespace wd
