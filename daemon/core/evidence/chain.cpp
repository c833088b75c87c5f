#include "core/evidence/chain.hpp"

#include <nlohmann/json.hpp>

#include "core/base/crypto.hpp"

namespace glasswatch::core::evidence {

namespace {

void put_field(std::string& out, std::string_view field) {
    out += std::to_string(field.size());
    out += ':';
    out += field;
    out += ',';
}

bool is_lower_hex(std::string_view s) noexcept {
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

std::string range_text(std::int64_t from, std::int64_t to) {
    return from == to ? "entry " + std::to_string(from)
                      : "entries " + std::to_string(from) + ".." + std::to_string(to);
}

}  // namespace

std::string entry_hash(const entry& e) {
    std::string data = "glasswatch evidence v1,";
    put_field(data, std::to_string(e.seq));
    put_field(data, std::to_string(e.epoch));
    put_field(data, e.kind);
    put_field(data, std::to_string(e.recorded_at));
    put_field(data, e.ref);
    put_field(data, e.body);
    put_field(data, e.prev_hash);
    return sha256_hex(data);
}

entry make_entry(const head& h, const sealing_key& k_epoch, std::string_view kind,
                 micros recorded_at, std::string ref, std::string body) {
    entry e;
    e.seq = h.seq + 1;
    e.epoch = h.epoch;
    e.kind = std::string(kind);
    e.recorded_at = recorded_at;
    e.ref = std::move(ref);
    e.body = std::move(body);
    e.prev_hash = h.hash;
    e.hash = entry_hash(e);
    e.mac = seal(k_epoch, e.epoch, e.hash);
    return e;
}

entry make_seal(const head& h, const sealing_key& k_epoch, micros recorded_at) {
    nlohmann::json body = {{"closes_epoch", h.epoch}, {"last_seq", h.seq}, {"head", h.hash}};
    return make_entry(h, k_epoch, kinds::seal, recorded_at, "epoch " + std::to_string(h.epoch),
                      body.dump());
}

head advance(const head& h, const entry& e) {
    head next = h;
    next.seq = e.seq;
    next.hash = e.hash;
    next.last_is_seal = e.kind == kinds::seal;
    return next;
}

std::string anchor_text(std::int64_t seq, std::string_view hash) {
    return std::to_string(seq) + ":" + std::string(hash.substr(0, 16));
}

std::optional<anchor> parse_anchor(std::string_view text) {
    const auto colon = text.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon > 18) return std::nullopt;
    anchor a;
    for (char c : text.substr(0, colon)) {
        if (c < '0' || c > '9') return std::nullopt;
        a.seq = a.seq * 10 + (c - '0');
    }
    const std::string_view h = text.substr(colon + 1);
    if (a.seq <= 0 || h.size() != 16 || !is_lower_hex(h)) return std::nullopt;
    a.hash_prefix = std::string(h);
    return a;
}

std::vector<anchor> find_anchors(std::string_view text) {
    std::vector<anchor> out;
    std::size_t pos = 0;
    while ((pos = text.find(':', pos)) != std::string_view::npos) {
        std::size_t start = pos;
        while (start > 0 && text[start - 1] >= '0' && text[start - 1] <= '9')
            --start;
        const std::size_t end = pos + 17;
        const bool boundary_before =
            start == 0 || !((text[start - 1] >= 'a' && text[start - 1] <= 'z') ||
                            (text[start - 1] >= 'A' && text[start - 1] <= 'Z'));
        const bool boundary_after =
            end >= text.size() ||
            !((text[end] >= '0' && text[end] <= '9') || (text[end] >= 'a' && text[end] <= 'f'));
        if (start < pos && end <= text.size() && boundary_before && boundary_after)
            if (auto a = parse_anchor(text.substr(start, end - start))) out.push_back(*a);
        ++pos;
    }
    return out;
}

verify_report verify(const std::vector<entry>& entries, const verify_input& in) {
    verify_report rep;
    rep.seals_checked = in.k0.has_value();
    auto fail = [&rep](std::int64_t seq, std::string why) {
        rep.ok = false;
        rep.first_bad_seq = seq;
        rep.problem = std::move(why);
        return rep;
    };
    if (entries.empty()) {
        if (in.from_genesis)
            return fail(1, "the chain is empty: every entry was deleted" +
                               (in.key_epoch ? " (the sealing key is at epoch " +
                                                   std::to_string(*in.key_epoch) + ")"
                                             : std::string()));
        return rep;
    }
    const bool genesis = in.from_genesis;
    std::int64_t expected = genesis ? 1 : entries.front().seq;
    std::string prev_hash = genesis ? genesis_hash : entries.front().prev_hash;
    std::int64_t epoch = genesis ? 0 : entries.front().epoch;
    bool prev_was_seal = false;
    std::optional<sealing_key> k_epoch;
    if (in.k0) k_epoch = key_at(*in.k0, epoch);

    for (const entry& e : entries) {
        const std::string seq = std::to_string(e.seq);
        if (e.seq != expected) {
            if (e.seq > expected)
                return fail(expected, range_text(expected, e.seq - 1) +
                                          (e.seq - 1 == expected ? " is" : " are") +
                                          " missing (deleted)");
            return fail(e.seq, "entry " + seq + " appears out of order or twice");
        }
        if (genesis && e.seq == 1 && e.kind != kinds::init && e.kind != kinds::migration)
            return fail(1, "entry 1 is a " + e.kind +
                               " entry, not the chain's start: entries before it were deleted");
        if (e.prev_hash != prev_hash)
            return fail(e.seq, "entry " + seq +
                                   " does not link to the entry before it: an entry before it "
                                   "was removed, replaced or rewritten");
        if (entry_hash(e) != e.hash)
            return fail(e.seq, "entry " + seq + " (" + e.kind +
                                   ") was altered: its content does not match its hash");
        if (e.epoch != epoch) {
            if (!(prev_was_seal && e.epoch == epoch + 1))
                return fail(e.seq, "entry " + seq + " is in epoch " + std::to_string(e.epoch) +
                                       " where epoch " + std::to_string(epoch) +
                                       " was expected: entries around it were removed");
            epoch = e.epoch;
            if (k_epoch) k_epoch = evolve(*k_epoch, epoch);
        } else if (prev_was_seal) {
            return fail(e.seq, "entry " + seq + " follows the seal of epoch " +
                                   std::to_string(epoch) + " but was sealed in that epoch");
        }
        if (k_epoch && !constant_time_equal(seal(*k_epoch, e.epoch, e.hash), e.mac))
            return fail(e.seq,
                        "entry " + seq + " (" + e.kind +
                            "): its seal does not verify: it was written or rewritten without "
                            "the sealing key of epoch " +
                            std::to_string(e.epoch) +
                            " (or the verification key is not this "
                            "chain's)");
        if (e.kind == kinds::seal) {
            const auto body = nlohmann::json::parse(e.body, nullptr, false);
            const bool agrees = body.is_object() && body.value("closes_epoch", -1LL) == e.epoch &&
                                body.value("last_seq", -1LL) == e.seq - 1 &&
                                body.value("head", std::string()) == e.prev_hash;
            if (!agrees)
                return fail(e.seq, "entry " + seq + " is a seal that does not match its place");
            rep.sealed_through_seq = e.seq;
            ++rep.closed_epochs;
        }
        prev_was_seal = e.kind == kinds::seal;
        prev_hash = e.hash;
        ++expected;
        ++rep.entries;
    }
    rep.last_seq = expected - 1;
    rep.last_hash = prev_hash;

    if (in.key_epoch) {
        // After a seal the key has evolved (or is about to: a stop between the two is mended at
        // the next start); otherwise it is still the last entry's epoch.
        const std::int64_t lowest = epoch;
        const std::int64_t highest = prev_was_seal ? epoch + 1 : epoch;
        if (*in.key_epoch > highest)
            return fail(rep.last_seq + 1,
                        "the chain ends at entry " + std::to_string(rep.last_seq) + " in epoch " +
                            std::to_string(epoch) + ", but the sealing key is at epoch " +
                            std::to_string(*in.key_epoch) +
                            ": the entries after it were deleted (truncated)");
        if (*in.key_epoch < lowest)
            return fail(rep.last_seq, "the sealing key is at epoch " +
                                          std::to_string(*in.key_epoch) +
                                          ", older than the chain's epoch " +
                                          std::to_string(epoch) + ": the key file was replaced");
    }
    const std::int64_t first_seq = entries.front().seq;
    for (const anchor& a : in.anchors) {
        const std::string at = std::to_string(a.seq) + ":" + a.hash_prefix;
        if (a.seq > rep.last_seq)
            return fail(rep.last_seq + 1,
                        "anchor " + at + " lies beyond the chain's last entry " +
                            std::to_string(rep.last_seq) +
                            ": entries were deleted, or this is an older copy (rolled back)");
        if (a.seq < first_seq) continue;  // before the start of a partial bundle
        const entry& e = entries[static_cast<std::size_t>(a.seq - first_seq)];
        if (e.hash.compare(0, a.hash_prefix.size(), a.hash_prefix) != 0)
            return fail(a.seq, "entry " + std::to_string(a.seq) + " is not the entry anchor " + at +
                                   " recorded: the chain was rewritten or rolled back");
        ++rep.anchors_checked;
    }
    return rep;
}

}  // namespace glasswatch::core::evidence
