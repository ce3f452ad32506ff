// The pipeline settings as JSON: recorded in each version's publish.json so
// `verify --against` can re-encode a bundle exactly as it was published, and
// hashed into the config digest that decides whether a re-drop is unchanged.
#pragma once

#include <nlohmann/json.hpp>

#include "core/pipeline_options.h"
#include "core/status.h"

namespace wd {

nlohmann::json OptionsToJson(const PipelineOptions& o);
Result<PipelineOptions> OptionsFromJson(const nlohmann::json& j);

}  // namespace wd
