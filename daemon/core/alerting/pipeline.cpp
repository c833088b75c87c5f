#include "core/alerting/pipeline.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/base/crypto.hpp"

namespace glasswatch::core {

pipeline::pipeline(const config& cfg, parse_limits limits)
    : ctx_{cfg.tenant_id, cfg.tenant_name.empty() ? cfg.tenant_id : cfg.tenant_name},
      watchlist_(cfg.watch),
      prefilter_(watchlist_.all_guids(), watchlist_.all_upns()),
      normalizer_(limits) {}

process_output pipeline::process(std::string_view body, const body_origin& origin, micros now) {
    process_output out;
    ++stats_.bodies;
    stats_.bytes += body.size();
    // Fast path: almost every body concerns nobody we watch.
    const bool graph_page =
        origin.hint == record_hint::graph_signin || origin.hint == record_hint::graph_audit;
    if (!prefilter_.may_match(body)) {
        // A Graph page is still split: where the next page is, and whether this one was read
        // whole, matter even when none of its records concerns us (full_stream and the
        // service-principal streams are not narrowed to the watched ids).
        if (graph_page) {
            split_result parts = normalizer_.split(body);
            out.next_link = parts.next_link;
            out.records = parts.records.size();
            if (!parts.error.empty()) {
                ++stats_.bodies_malformed;
                out.body_error = parts.error;
                out.problems.push_back("malformed body: " + parts.error);
            }
        }
        return out;
    }
    ++stats_.candidate_bodies;

    split_result parts = normalizer_.split(body);
    out.next_link = parts.next_link;
    out.records = parts.records.size();
    out.body_error = parts.error;
    if (parts.bad_elements) {
        stats_.records_malformed += parts.bad_elements;
        out.problems.push_back("malformed record: array element is not an object");
    }
    for (auto raw : parts.records) {
        if (!prefilter_.may_match(raw)) continue;
        body_origin o = origin;
        if (parts.kind == body_kind::diagnostic_body) o.hint = record_hint::diagnostic;
        process_record(raw, o, now, out);
    }
    if (!parts.error.empty()) {
        ++stats_.bodies_malformed;
        out.problems.push_back("malformed body: " + parts.error);
        // The body mentioned a watched identifier and we could not read all of it: page
        // rather than lose it (records already handled keep their own alerts).
        fail_closed(body, origin, "malformed body: " + parts.error, now, out);
    }
    return out;
}

void pipeline::process_record(std::string_view raw, const body_origin& origin, micros now,
                              process_output& out) {
    ++stats_.candidate_records;
    normalize_result r = normalizer_.normalize(raw, origin.hint, origin.signin, &probe_);
    if (r.status == normalize_status::not_concerned) {
        ++stats_.not_concerned;
        return;
    }
    if (r.status == normalize_status::skipped_category) {
        ++stats_.skipped_by_category[r.error];
        return;
    }
    if (r.status == normalize_status::malformed) {
        ++stats_.records_malformed;
        out.problems.push_back("malformed record: " + r.error);
        fail_closed(raw, origin, "malformed record: " + r.error, now, out);
        return;
    }
    ++stats_.events;
    auto matches = match_event(watchlist_, r.ev);
    if (matches.empty()) return;
    stats_.matches += matches.size();
    // One alert per touch, naming every rule the event tripped (invariant 8).
    finding f{make_event_alert(ctx_, r.ev, matches, now), r.ev.raw, origin.source};
    for (const auto& d : drills_) {
        const bool covers = std::any_of(matches.begin(), matches.end(), [&](const match& m) {
            return d.account_id == m.subject_id;
        });
        if (covers && r.ev.time >= d.start && r.ev.time <= d.end) {
            label_drill(f.a, d.id);
            break;
        }
    }
    out.findings.push_back(std::move(f));
}

bool pipeline::watch_probe::concerns(std::string_view v) const {
    return wl_.names_anything(v);
}

void pipeline::fail_closed(std::string_view raw, const body_origin& origin, std::string_view reason,
                           micros now, process_output& out) {
    // The event id of an unreadable record is the hash of its bytes: a re-delivery of the same
    // bytes maps to the same alert.
    std::string digest = sha256_hex(raw);
    nlohmann::json d = {{"reason", std::string(reason)},
                        {"source", origin.source},
                        {"bytes", raw.size()},
                        {"sha256", digest}};
    if (raw.size() > max_evidence_bytes) d["evidence_bytes"] = max_evidence_bytes;
    alert a = make_health_alert(
        ctx_, rules::unparsed_candidate, severity::high, origin.source, digest.substr(0, 32),
        "Unreadable " + origin.source + " record mentions a watched identifier (" +
            std::string(reason) + "); raw bytes kept as evidence",
        now, d.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    ++stats_.matches;
    out.findings.push_back(
        {std::move(a), std::string(raw.substr(0, max_evidence_bytes)), origin.source});
}

}  // namespace glasswatch::core
