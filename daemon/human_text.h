// How numbers read in what weightdrop tells people: sizes in B/KiB/MiB/GiB,
// rates, durations, and a count with its noun ("1 watch", "2 watches").
// For terminals and logs; files meant for programs keep plain numbers.
#pragma once

#include <cstdint>
#include <string>

namespace wd {

// "512 B", "1.5 KiB", "386.0 MiB", "1.0 GiB" (powers of 1024).
std::string HumanBytes(uint64_t bytes);
// Bytes per second: "250 MiB/s", "12.5 MiB/s", "900 B/s".
std::string HumanRate(double bytes_per_second);
// "12 ms", "4.1 s", "2 min 5 s", "1 h 2 min".
std::string HumanDuration(double seconds);
// "1 watch", "0 watches": `n` and the noun in the form `n` calls for.
std::string Counted(uint64_t n, const char* one, const char* many);

}  // namespace wd
