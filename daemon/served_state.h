// ServedState: the per-model status a daemon starts with, so that a restart
// does not report "no models yet" while models are served. Counters come
// from the previous run's status.json (they survive restarts); the current
// version and its publish time come from the serve tree itself (which is the
// truth, whoever published). Plain file reads: call it before the loop runs
// or on a worker.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "config/daemon_config.h"
#include "daemon/status_report.h"

namespace wd {

// Models keyed "<serve>/<model>" as DaemonStatus::models. `previous_status`
// is the path of the last status.json (absent or unreadable: counters start
// at zero). Only serve roots of `cfg`'s watches are scanned; a model folder
// counts when its `current` names a version folder.
std::map<std::string, ModelStatus> RestoreModelStatus(const DaemonConfig& cfg,
                                                      const std::string& previous_status);

// The version serve/model/current names, when it names a version folder
// (a serve folder, not object storage).
std::optional<int> ServedVersion(const std::string& serve, const std::string& model);

}  // namespace wd
