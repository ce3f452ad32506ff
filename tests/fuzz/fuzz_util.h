// What the fuzz targets share: a scratch folder private to the process, a
// way to write an input to a file, the open-descriptor count behind the leak
// check, the publish.json round trip of pipeline settings, and the one way a
// target reports a broken invariant (abort, which libFuzzer records as a
// crash with the input that caused it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/pipeline_options.h"

namespace wd::fuzz {

// A folder private to this process under $WD_FUZZ_TMPDIR, /dev/shm or /tmp
// (in that order), made on first use and removed at normal exit.
const std::string& ScratchDir();

// Prints "weightdrop fuzz: <message>" to stderr and aborts.
[[noreturn]] void Fail(std::string_view message);

// Writes `size` bytes to `path`, replacing it; Fail()s on any error (the
// harness is broken, not the input).
void WriteFileOrDie(const std::string& path, const uint8_t* data, size_t size);

// Removes `path` (a file or a whole folder) if it exists; Fail()s on error.
void RemoveOrDie(const std::string& path);

// Entries of /proc/self/fd, not counting the one used to list them.
int OpenFdCount();

// Fail()s, listing what each descriptor points at, when more descriptors are
// open now than `before` (taken at the start of the run).
void CheckNoFdLeak(int before);

// Fail()s unless `options` (accepted from `what`) are valid and survive
// publish.json: OptionsToJson, written as the publisher writes it, parsed
// back, OptionsFromJson, with the same CanonicalOptions.
void CheckSettingsRoundTrip(const PipelineOptions& options, std::string_view what);

}  // namespace wd::fuzz
