// UTF-8 validation shared by the readers: weight names and zip member names
// must be valid UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF);
// and the one-line form of a message for logs and the terminal.
#pragma once

#include <string>
#include <string_view>

namespace wd {

bool IsValidUtf8(const std::string& s);

// `s` with control characters (U+0000-U+001F, U+007F) written as \xNN, so
// a name holding a newline cannot split a log line or forge one; with
// `non_ascii`, every byte from 0x80 too (for text that is not UTF-8).
std::string EscapeControl(std::string_view s, bool non_ascii = false);

}  // namespace wd
