// Shared by the libFuzzer harnesses: the configuration they watch with, and what the daemon does
// with one body from a source. Each harness is a LLVMFuzzerTestOneInput in its own file.
#pragma once

#include <string_view>

#include "core/alerting/pipeline.hpp"
#include "core/base/time.hpp"
#include "core/config/config.hpp"
#include "core/detection/normalize.hpp"

namespace glasswatch::fuzz {

// The watchlist of every harness, parsed by the real config loader: the accounts, group and CA
// policy of the reference fixtures (so the seeds hold watched ids), plus an account whose UPN
// has an apostrophe (Entra allows it; System.Text.Json writes it as \u0027).
const core::config& fuzz_config();

// A fixed "now": harness runs must be reproducible.
inline constexpr core::micros fuzz_now = 1762179600LL * 1000000;  // 2025-11-03T14:20:00Z

// The whole core path a source body takes: pipeline (prefilter, split, normalize, match, alert)
// and every sink payload built from each finding. Then every record of the body normalized and
// matched even when the prefilter would have skipped it: the normalizers must stand any input,
// not only candidates. Returns the pipeline's output.
core::process_output exercise_body(std::string_view body, const core::body_origin& origin);

// Aborts with `what` on stderr: how a harness reports a broken contract to libFuzzer.
[[noreturn]] void contract_broken(std::string_view what, std::string_view input);

}  // namespace glasswatch::fuzz
