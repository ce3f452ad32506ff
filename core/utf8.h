// UTF-8 validation shared by the readers: weight names and zip member names
// must be valid UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF).
#pragma once

#include <string>

namespace wd {

bool IsValidUtf8(const std::string& s);

}  // namespace wd
