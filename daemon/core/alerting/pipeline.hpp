// The pure pipeline: raw body -> prefilter -> split -> normalize -> match -> alerts.
// No I/O and no clock: `now` is passed in. The caller (a source adapter, or `replay`) hands the
// findings to the store, which commits them together with the source position.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/alerting/alert.hpp"
#include "core/config/config.hpp"
#include "core/detection/normalize.hpp"
#include "core/detection/prefilter.hpp"
#include "core/detection/watchlist.hpp"

namespace glasswatch::core {

// What the bytes are and where they came from.
struct body_origin {
    std::string source = "replay";  // "graph", "eventhub", "replay": recorded with evidence
    record_hint hint = record_hint::any;
    signin_type signin = signin_type::none;  // for Graph sign-in pages
};

// An alert plus the raw record that proves it (the evidence row).
struct finding {
    alert a;
    std::string raw;
    std::string source;
};

struct drill_window {
    std::string id;
    std::string account_id;  // lower-case object id
    micros start = 0, end = 0;
};

struct pipeline_stats {
    std::uint64_t bodies = 0;
    std::uint64_t bytes = 0;
    std::uint64_t bodies_malformed = 0;
    std::uint64_t candidate_bodies = 0;   // prefilter hit on the body
    std::uint64_t candidate_records = 0;  // prefilter hit on a record
    std::uint64_t records_malformed = 0;
    std::uint64_t events = 0;         // candidate records normalized
    std::uint64_t not_concerned = 0;  // candidate records whose identities are not watched
    std::uint64_t matches = 0;        // rules fired
    std::map<std::string, std::uint64_t> skipped_by_category;  // categories we do not handle
};

struct process_output {
    std::vector<finding> findings;
    std::vector<std::string> problems;  // "kind: reason" for malformed input, content-free
    std::string next_link;              // for Graph pages
    // Non-empty when the body as a whole could not be read (truncated, too large, too deep, an
    // @odata.nextLink that is not a string): records after the fault and the nextLink may be
    // missing, so a Graph poller must not take the page for the last one.
    std::string body_error;
    std::size_t records = 0;  // records in the body (known for candidate bodies and Graph pages)
};

// Evidence kept for an unreadable candidate body is cut to this many bytes (its detail carries
// the size and the SHA-256 of all of it): a 50 MB hostile body must not become a 50 MB row.
inline constexpr std::size_t max_evidence_bytes = 1u << 20;

class pipeline {
public:
    pipeline(const config& cfg, parse_limits limits = {});

    process_output process(std::string_view body, const body_origin& origin, micros now);

    void set_drills(std::vector<drill_window> drills) { drills_ = std::move(drills); }
    const pipeline_stats& stats() const noexcept { return stats_; }
    const watchlist& watched() const noexcept { return watchlist_; }
    const prefilter& filter() const noexcept { return prefilter_; }
    const alert_context& context() const noexcept { return ctx_; }

private:
    void process_record(std::string_view raw, const body_origin& origin, micros now,
                        process_output& out);
    void fail_closed(std::string_view raw, const body_origin& origin, std::string_view reason,
                     micros now, process_output& out);

    // Answers the normalizer's identity questions from the watchlist (any case, ids and UPNs).
    class watch_probe final : public identity_probe {
    public:
        explicit watch_probe(const watchlist& wl) : wl_(wl) {}
        bool concerns(std::string_view v) const override;

    private:
        const watchlist& wl_;
    };

    alert_context ctx_;
    watchlist watchlist_;
    watch_probe probe_{watchlist_};
    prefilter prefilter_;
    normalizer normalizer_;
    std::vector<drill_window> drills_;
    pipeline_stats stats_;
};

}  // namespace glasswatch::core
