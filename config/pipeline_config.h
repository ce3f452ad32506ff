// Pipeline settings (docs/configuration.md) from YAML text or a file into
// PipelineOptions.
// This is the one adapter over yaml-cpp for them: every error, YAML syntax
// errors included, reads "file:line:col: message", and no exception escapes.
#pragma once

#include <string>
#include <vector>

#include "core/pipeline_options.h"
#include "core/status.h"

namespace wd {

// Parses pipeline settings from YAML text; `file` names the source in
// messages. An empty document or `{}` gives the defaults. What is doubtful
// but not wrong (patterns of two dtypes that share some names) goes to
// *warnings, when given, as "file:line:col: ..." lines.
Result<PipelineOptions> ParsePipelineConfig(const std::string& yaml_text, const std::string& file,
                                            std::vector<std::string>* warnings = nullptr);

// As above, but keys present in the text replace those settings of `base`
// and the rest keep base's values (a watch's overrides over `defaults`).
Result<PipelineOptions> ParsePipelineConfigOver(const std::string& yaml_text,
                                                const std::string& file,
                                                const PipelineOptions& base,
                                                std::vector<std::string>* warnings = nullptr);

// Reads and parses the file at `path` (a kConfig error if it cannot be read).
Result<PipelineOptions> LoadPipelineConfig(const std::string& path);

}  // namespace wd
