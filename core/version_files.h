// The files of a published version that every VersionStore writes and
// reads the same way: publish.json (provenance), the version-qualified
// pointers, version numbers (docs/formats.md, "Version folder").
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/manifest.h"
#include "core/staged_content.h"
#include "core/status.h"
#include "core/version_store.h"

namespace wd {

inline constexpr char kManifestFile[] = "weights_manifest.json";
inline constexpr char kModelFile[] = "model.json";
inline constexpr char kProvenanceFile[] = "publish.json";

// A canonical positive decimal version ("7", never "07" or "+7").
std::optional<int> ParseVersion(const std::string& s);
// "1, 2, 5", or "none".
std::string JoinInts(const std::vector<int>& vs);
std::string NowRfc3339();

// The bundle's model.json with "weightsManifest" set to `m`.
Result<std::string> ModelJsonWith(const std::string& topology, const Manifest& m,
                                  const std::string& where);

// publish.json of version `version`.
std::string ProvenanceJson(const PublishRequest& req, int version, const StagedContent& content,
                           const std::string& manifest_json);

// Whether publish.json text `text` (read from `where`) records the source
// and settings of `req`. An unreadable record is a warning and false.
bool RecordsSameSource(const std::string& text, const std::string& where, const PublishRequest& req,
                       std::vector<std::string>* warnings);
// The source record of publish.json text; nullopt when it has none.
std::optional<SourceRecord> SourceRecordOf(const std::string& text);

// The version a rollback of the model at `where` goes to: `to` if it is one
// of `versions`, else the newest version older than current `cur`.
Result<int> PickRollbackTarget(const std::string& where, const std::vector<int>& versions,
                               std::optional<int> cur, std::optional<int> to);

}  // namespace wd
