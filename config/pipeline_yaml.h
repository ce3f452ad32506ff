// Node-level YAML helpers shared by the config/ parsers: source locations,
// one table of keys per mapping, and the table of pipeline keys
// (docs/configuration.md).
// Internal to config/: only config/*.cpp include it, so yaml-cpp types stay
// out of core/ and daemon/ headers. Nothing here throws on purpose, but the
// entry point that called YAML::Load must still catch (yaml-cpp may throw).
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/pipeline_options.h"
#include "core/status.h"

namespace wd::yaml {

// "file:line:col" (1-based) for a node, or "file" when it has no position.
std::string Where(const std::string& file, const YAML::Mark& mark);
// A kConfig error "file:line:col: message" located at `node`.
Status ErrorAt(const std::string& file, const YAML::Node& node, const std::string& message);
// A kConfig error for a yaml-cpp exception (syntax errors carry a position)
// thrown while reading `text`. An unquoted pattern that starts with `*` (a
// YAML alias to no anchor) is told apart and gets the quoting hint.
Status FromException(const std::string& file, const YAML::Exception& e, const std::string& text);
// What a node is, for "expected X, got Y" messages: 'text', a list, ...
std::string Describe(const YAML::Node& node);
// The largest config file read: settings are a few KB.
inline constexpr size_t kMaxConfigBytes = 1 << 20;

// The single document of `text` (a null node when there is none). Refuses
// text over kMaxConfigBytes, text that is not UTF-8, any scalar that is not
// UTF-8, and more than one document, in bounded time (never
// YAML::LoadAll, which loops on ","). Throws what yaml-cpp throws.
Result<YAML::Node> LoadOneDocument(const std::string& text, const std::string& file);
// A config file's text; kConfig errors name the path.
Result<std::string> ReadConfigFile(const std::string& path);
// The one adapter around yaml-cpp's throwing API: loads the single document
// of `text` and returns parse(root); every exception becomes a kConfig error
// naming `file` (with line and column when yaml-cpp has them).
template <typename T, typename Fn>
Result<T> ParseDocument(const std::string& text, const std::string& file, Fn&& parse) {
  try {
    WD_ASSIGN_OR_RETURN(YAML::Node root, LoadOneDocument(text, file));
    return parse(root);
  } catch (const YAML::Exception& e) {
    return FromException(file, e, text);
  } catch (const std::exception& e) {
    return Status::Config(file + ": " + e.what());
  } catch (...) {
    return Status::Config(file + ": unexpected error while reading YAML");
  }
}

// A scalar whole number >= min (at most 6 digits) into *out.
// A plain (unquoted) or !!bool scalar spelled as a YAML 1.2 boolean.
bool IsBool(const YAML::Node& node, bool value);

Status WholeNumberValue(const std::string& file, const YAML::Node& value, const std::string& what,
                        int min, int* out);

// Calls visit(key, key_node, value) for each entry of mapping `node` in
// document order, stopping at the first error. A null node is an empty
// mapping; any other non-mapping, a non-scalar key or a key seen twice is an
// error. `what` names the mapping in messages ("pipeline settings", ...).
using KeyVisitor = std::function<Status(const std::string& key, const YAML::Node& key_node,
                                        const YAML::Node& value)>;
Status VisitMapping(const std::string& file, const YAML::Node& node, const std::string& what,
                    const KeyVisitor& visit);

// One key of a mapping and what its (non-null) value does to the target.
template <typename T>
struct KeyRule {
  const char* key;
  Status (*apply)(const std::string& file, const YAML::Node& value, T* out);
};

template <typename T>
const KeyRule<T>* FindKey(std::span<const KeyRule<T>> rules, const std::string& key) {
  for (const KeyRule<T>& rule : rules) {
    if (key == rule.key) return &rule;
  }
  return nullptr;
}

// "a, b or c": the keys of a table, for "unknown key" messages.
std::string KeyList(std::span<const char* const> keys);

// The key of `known` that `key` is likely a typo of, or nullptr: the nearest
// by Damerau-Levenshtein distance ignoring case, when that is at most 2 (at
// most 1 when either key has 4 characters or fewer). The first wins a tie.
const char* ClosestKey(const std::string& key, std::span<const char* const> known);

// "unknown key 'watch' in daemon config; did you mean 'watches'?", or when no
// key is close, "unknown key 'x' in daemon config (expected a, b or c)".
std::string UnknownKeyMessage(const std::string& key, const std::string& what,
                              std::span<const char* const> known);

// Applies every entry of mapping `node` through `rules`. Unknown keys and
// keys without a value are errors at the key.
template <typename T>
Status ApplyKeys(std::span<const KeyRule<T>> rules, const std::string& file, const YAML::Node& node,
                 const std::string& what, T* out) {
  return VisitMapping(
      file, node, what,
      [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) -> Status {
        const KeyRule<T>* rule = FindKey(rules, key);
        if (rule == nullptr) {
          std::vector<const char*> names;
          for (const KeyRule<T>& r : rules) names.push_back(r.key);
          return ErrorAt(file, key_node, UnknownKeyMessage(key, what, names));
        }
        if (value.IsNull()) return ErrorAt(file, key_node, key + ": no value");
        return rule->apply(file, value, out);
      });
}

// The pipeline keys: shard_size, groups, unmatched, quantize,
// strict_patterns. A key present replaces that setting wholesale (a
// `quantize` map replaces the base map).
std::span<const KeyRule<PipelineOptions>> PipelineKeys();

// Applies the pipeline keys of mapping `node` over `*options`; any other key
// is an error. Validates what it sets, CheckPatterns included.
Status ApplyPipelineNode(const std::string& file, const YAML::Node& node, PipelineOptions* options,
                         std::vector<std::string>* warnings);

// The patterns written in mapping `settings` (its own `quantize` and `groups`
// keys; inherited ones were checked where they are written), checked without
// a bundle: a quantize pattern whose every name a pattern of another dtype
// also matches can only conflict, an error. Patterns of two dtypes that
// share some names, and a group whose patterns earlier groups cover, are
// "file:line:col: ..." lines added to *warnings.
Status CheckPatterns(const std::string& file, const YAML::Node& settings,
                     std::vector<std::string>* warnings);

}  // namespace wd::yaml
