// Differential target: the prefilter may let anything through, but it must never reject a record
// that the full path (normalize + matcher) accepts (prefilter.hpp contract), and a body holding
// such a record must raise an alert through the pipeline (split + prefilter + normalize + match).
// A violation aborts with the record.
//
// Input: one record as JSON text, in which the byte 0x01 followed by a style byte and a pattern
// byte stands for a watched identifier: style % 8 picks which, style / 8 how it is spelled (case,
// escaped hyphens, other \u00XX escapes as a JSON writer may choose them), and pattern bit (i % 8)
// whether the "some characters" treatments apply to its i-th character. Mutations thus keep
// producing records that name watched accounts in every spelling a JSON writer may choose, which
// random bytes would almost never do.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/detection/matcher.hpp"
#include "core/detection/normalize.hpp"
#include "core/detection/prefilter.hpp"
#include "fuzz/fuzz_common.hpp"

using namespace glasswatch;

namespace {

bool is_letter(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Appends `id` spelled by `how` (5 bits): 1 = all upper case (escapes too: \u002D), 2 = upper
// case where `pattern` says, 4 = hyphens as \u002d, 8 = \u00XX escapes where `pattern` says,
// 16 = the characters HTML-safe writers escape (System.Text.Json's default: ' + & < >).
void spell(std::string& out, std::string_view id, unsigned how, unsigned pattern) {
    static constexpr std::string_view html_sensitive = "'+&<>";
    for (std::size_t i = 0; i < id.size(); ++i) {
        char c = id[i];
        const bool chosen = ((pattern >> (i % 8)) & 1u) != 0;
        if (is_letter(c) && ((how & 1u) || ((how & 2u) && chosen)))
            c = static_cast<char>(c & ~0x20);
        const bool escape =
            c == '-' ? (how & 4u) != 0
                     : ((how & 8u) && chosen) ||
                           ((how & 16u) && html_sensitive.find(c) != html_sensitive.npos);
        if (!escape) {
            out += c;
            continue;
        }
        char esc[8];
        std::snprintf(esc, sizeof esc, (how & 1u) ? "\\u%04X" : "\\u%04x",
                      static_cast<unsigned char>(c));
        out += esc;
    }
}

const std::vector<std::string>& identities() {
    static const std::vector<std::string> ids = [] {
        const core::watchlist wl(fuzz::fuzz_config().watch);
        std::vector<std::string> v = wl.all_guids();
        for (auto& u : wl.all_upns())
            v.push_back(u);
        return v;
    }();
    return ids;
}

// `forced_how`, when set, replaces every placeholder's own spelling (its pattern stays).
std::string expand(std::string_view in, std::optional<unsigned> forced_how) {
    const auto& ids = identities();
    std::string out;
    out.reserve(in.size() + 64);
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '\x01' || i + 1 == in.size()) {
            out += in[i];
            continue;
        }
        const auto style = static_cast<unsigned char>(in[++i]);
        const unsigned pattern = i + 1 < in.size() ? static_cast<unsigned char>(in[++i]) : 0u;
        spell(out, ids[style % ids.size()], forced_how.value_or((style / ids.size()) & 31u),
              pattern);
    }
    return out;
}

struct framing {
    const char* name;
    core::record_hint hint;
    core::signin_type signin;
    const char* open;  // the record goes between open and close
    const char* close;
};

// The ways a record reaches the pipeline: an Event Hub body, a Graph sign-in or audit page.
constexpr framing framings[] = {
    {"diagnostic body", core::record_hint::diagnostic, core::signin_type::none, "{\"records\":[",
     "]}"},
    {"graph sign-in page", core::record_hint::graph_signin, core::signin_type::interactive,
     "{\"value\":[", "],\"@odata.context\":\"x\"}"},
    {"graph beta sign-in page", core::record_hint::graph_signin, core::signin_type::non_interactive,
     "{\"value\":[", "]}"},
    {"graph audit page", core::record_hint::graph_audit, core::signin_type::none, "{\"value\":[",
     "]}"},
};

// Every contract for one record text.
void check(const std::string& rec) {
    static core::normalizer norm;
    static core::pipeline pipe(fuzz::fuzz_config());
    const core::prefilter& pre = pipe.filter();

    // A replayed NDJSON line is normalized without a hint.
    core::normalize_result any = norm.normalize(rec, core::record_hint::any);
    if (any.status == core::normalize_status::ok &&
        !core::match_event(pipe.watched(), any.ev).empty() && !pre.may_match(rec))
        fuzz::contract_broken("prefilter rejects a record the matcher accepts (no hint)", rec);

    for (const auto& f : framings) {
        core::normalize_result r = norm.normalize(rec, f.hint, f.signin);
        if (r.status != core::normalize_status::ok) continue;
        if (core::match_event(pipe.watched(), r.ev).empty()) continue;
        if (!pre.may_match(rec))
            fuzz::contract_broken(
                std::string("prefilter rejects a record the matcher accepts (") + f.name + ")",
                rec);
        const std::string body = f.open + rec + f.close;
        core::body_origin origin;
        origin.source = "fuzz";
        origin.hint = f.hint;
        origin.signin = f.signin;
        if (pipe.process(body, origin, fuzz::fuzz_now).findings.empty())
            fuzz::contract_broken(std::string("a matching record raises no alert in a ") + f.name,
                                  body);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    // The spelling the input asks for, then the ones real writers produce for the same record:
    // a style byte that happens to hit them is one value in 32, and coverage cannot lead there
    // (an escape that hides an id runs the same code as one that does not).
    const std::string asked = expand(in, std::nullopt);
    check(asked);
    for (unsigned how : {16u, 1u | 4u | 16u}) {  // System.Text.Json; the same, upper case
        const std::string rec = expand(in, how);
        if (rec != asked) check(rec);
    }
    return 0;
}
