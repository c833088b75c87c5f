// The evidence chain's pure parts: forward-secure keys, entries, anchors, and verification of
// every tamper an attacker with root on the VM can try (docs/evidence.md).
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "core/evidence/chain.hpp"
#include "core/evidence/sealing_key.hpp"

using namespace glasswatch::core::evidence;

namespace {

sealing_key test_k0() {
    sealing_key k;
    for (std::size_t i = 0; i < k.bytes.size(); ++i)
        k.bytes[i] = static_cast<std::uint8_t>(i * 7 + 1);
    return k;
}

// A chain as the store writes it: init, then `per_epoch` entries and a seal per epoch, the key
// evolving after each seal. Returns the entries and the key file's epoch.
struct built {
    std::vector<entry> entries;
    std::int64_t key_epoch = 0;
    sealing_key current;
};

built build_chain(int epochs, int per_epoch, bool seal_last = true) {
    built b;
    b.current = test_k0();
    head h;
    auto append = [&](std::string_view kind, std::string ref, std::string body) {
        entry e = make_entry(h, b.current, kind, 1000 + h.seq, std::move(ref), std::move(body));
        h = advance(h, e);
        b.entries.push_back(e);
    };
    auto close_epoch = [&] {
        entry s = make_seal(h, b.current, 5000 + h.seq);
        h = advance(h, s);
        b.entries.push_back(s);
        h.epoch += 1;
        b.current = evolve(b.current, h.epoch);
    };
    append(kinds::init, "chain", R"({"key_id":"x"})");
    close_epoch();
    for (int e = 0; e < epochs; ++e) {
        for (int i = 0; i < per_epoch; ++i)
            append(i % 2 ? kinds::delivery : kinds::alert, "alert-" + std::to_string(i),
                   R"({"summary":"break-glass sign-in","severity":"critical"})");
        if (seal_last || e + 1 < epochs) close_epoch();
    }
    b.key_epoch = h.epoch;
    return b;
}

// What an attacker without the old keys does after an edit: every later entry re-linked and
// re-hashed, each seal's body rewritten to name the new head (optionally re-sealed with `key`).
void recompute_from(std::vector<entry>& entries, std::size_t from,
                    const sealing_key* key = nullptr) {
    for (std::size_t i = from; i < entries.size(); ++i) {
        entry& e = entries[i];
        if (i > from) e.prev_hash = entries[i - 1].hash;
        if (e.kind == kinds::seal)
            e.body =
                nlohmann::json{
                    {"closes_epoch", e.epoch}, {"last_seq", e.seq - 1}, {"head", e.prev_hash}}
                    .dump();
        e.hash = entry_hash(e);
        if (key != nullptr) e.mac = seal(*key, e.epoch, e.hash);
    }
}

verify_input with_key(const built& b) {
    verify_input in;
    in.k0 = test_k0();
    in.key_epoch = b.key_epoch;
    return in;
}

}  // namespace

TEST_CASE("evidence keys: each epoch's key is a one-way step, K_e derives from K_0 only forward") {
    const sealing_key k0 = test_k0();
    const sealing_key k1 = evolve(k0, 1), k2 = evolve(k1, 2);
    CHECK(key_at(k0, 0) == k0);
    CHECK(key_at(k0, 2) == k2);
    CHECK_FALSE(k1 == k0);
    CHECK_FALSE(k2 == k1);
    // The MAC key of an epoch is not the epoch key (a MAC gives nothing toward the next step).
    CHECK_FALSE(mac_key(k1, 1) == k1);
    CHECK_FALSE(mac_key(k1, 1) == evolve(k1, 2));
    // The same data sealed in two epochs differs.
    CHECK(seal(k1, 1, "h") != seal(k2, 2, "h"));
    CHECK(seal(k1, 1, "h") == seal(key_at(k0, 1), 1, "h"));
}

TEST_CASE("evidence keys: the verification key round-trips and a wrong one is refused") {
    const sealing_key k0 = test_k0();
    const std::string text = format_verification_key(k0);
    CHECK(text.rfind("gwv1-", 0) == 0);
    CHECK(text.size() == 5 + 64);
    REQUIRE(parse_verification_key("  " + text + "\n"));
    CHECK(*parse_verification_key(text) == k0);
    CHECK_FALSE(parse_verification_key(text.substr(1)));
    CHECK_FALSE(parse_verification_key(text.substr(0, text.size() - 1)));
    CHECK_FALSE(parse_verification_key("gwv1-" + std::string(64, 'g')));
    CHECK(key_id(k0).size() == 16);
    CHECK(key_id(k0) != key_id(evolve(k0, 1)));
    REQUIRE(random_key());
    CHECK_FALSE(*random_key() == *random_key());
}

TEST_CASE("evidence chain: an untampered chain verifies, with and without the key") {
    built b = build_chain(3, 4);
    verify_report r = verify(b.entries, with_key(b));
    INFO(r.problem);
    CHECK(r.ok);
    CHECK(r.seals_checked);
    CHECK(r.entries == static_cast<std::int64_t>(b.entries.size()));
    CHECK(r.closed_epochs == 4);
    CHECK(r.sealed_through_seq == r.last_seq);
    verify_input no_key;
    no_key.key_epoch = b.key_epoch;
    r = verify(b.entries, no_key);
    CHECK(r.ok);
    CHECK_FALSE(r.seals_checked);
}

TEST_CASE("evidence chain: deleting the last entry, the last epochs or everything is detected") {
    built b = build_chain(3, 4);
    SECTION("the last entry (a seal)") {
        b.entries.pop_back();
        const verify_report r = verify(b.entries, with_key(b));
        CHECK_FALSE(r.ok);
        CHECK(r.first_bad_seq == static_cast<std::int64_t>(b.entries.size()) + 1);
        CHECK_THAT(r.problem, Catch::Contains("truncated"));
    }
    SECTION("the whole last epoch") {
        b.entries.resize(b.entries.size() - 5);
        const verify_report r = verify(b.entries, with_key(b));
        CHECK_FALSE(r.ok);
        CHECK_THAT(r.problem, Catch::Contains("deleted"));
    }
    SECTION("every entry") {
        const verify_report r = verify({}, with_key(b));
        CHECK_FALSE(r.ok);
        CHECK(r.first_bad_seq == 1);
        CHECK_THAT(r.problem, Catch::Contains("every entry was deleted"));
    }
    SECTION("the first entries") {
        b.entries.erase(b.entries.begin(), b.entries.begin() + 3);
        const verify_report r = verify(b.entries, with_key(b));
        CHECK_FALSE(r.ok);
        CHECK(r.first_bad_seq == 1);
    }
    SECTION("one in the middle") {
        b.entries.erase(b.entries.begin() + 4);
        const verify_report r = verify(b.entries, with_key(b));
        CHECK_FALSE(r.ok);
        CHECK(r.first_bad_seq == 5);
        CHECK_THAT(r.problem, Catch::Contains("entry 5 is missing"));
    }
}

TEST_CASE("evidence chain: an edited entry is named, recomputed hashes do not pass the seals") {
    built b = build_chain(3, 4);
    const std::size_t target = 4;  // an alert in the first epoch after init (seq 5)
    b.entries[target].body = R"({"summary":"nothing to see","severity":"info"})";
    SECTION("edited in place") {
        const verify_report r = verify(b.entries, with_key(b));
        CHECK_FALSE(r.ok);
        CHECK(r.first_bad_seq == b.entries[target].seq);
        CHECK_THAT(r.problem, Catch::Contains("altered"));
    }
    SECTION("edited and every hash after it recomputed (no sealing key)") {
        recompute_from(b.entries, target);
        // Structure alone cannot see it: that is what the seals are for.
        verify_input structure_only;
        structure_only.key_epoch = b.key_epoch;
        CHECK(verify(b.entries, structure_only).ok);
        const verify_report r = verify(b.entries, with_key(b));
        CHECK_FALSE(r.ok);
        CHECK(r.first_bad_seq == b.entries[target].seq);
        CHECK_THAT(r.problem, Catch::Contains("seal does not verify"));
    }
    SECTION("re-sealed with the key the attacker holds (the current epoch's)") {
        // Root on the VM has K_current: it can seal, but only under the current epoch.
        recompute_from(b.entries, target, &b.current);
        const verify_report r = verify(b.entries, with_key(b));
        CHECK_FALSE(r.ok);
        CHECK(r.first_bad_seq == b.entries[target].seq);
    }
}

TEST_CASE("evidence chain: entries moved across epochs or after a seal are refused") {
    built b = build_chain(2, 2);
    // Relabel an entry of epoch 1 as epoch 2 and re-hash the rest (seals are checked separately).
    b.entries[3].epoch = 2;
    recompute_from(b.entries, 3);
    verify_input structure_only;
    const verify_report r = verify(b.entries, structure_only);
    CHECK_FALSE(r.ok);
    CHECK(r.first_bad_seq == b.entries[3].seq);
}

TEST_CASE("evidence chain: anchors make a rollback to an older copy visible") {
    built later = build_chain(4, 3);
    built older = build_chain(2, 3);  // the same history, cut earlier: an old backup
    const entry& late = later.entries.back();
    verify_input in = with_key(older);
    in.anchors.push_back(*parse_anchor(anchor_text(late.seq, late.hash)));
    verify_report r = verify(older.entries, in);
    CHECK_FALSE(r.ok);
    CHECK_THAT(r.problem, Catch::Contains("rolled back"));
    CHECK(r.first_bad_seq == older.entries.back().seq + 1);

    // An anchor inside the chain must match the entry there.
    in = with_key(later);
    in.anchors = {*parse_anchor(anchor_text(5, later.entries[4].hash))};
    r = verify(later.entries, in);
    CHECK(r.ok);
    CHECK(r.anchors_checked == 1);
    in.anchors = {*parse_anchor(anchor_text(5, later.entries[5].hash))};
    r = verify(later.entries, in);
    CHECK_FALSE(r.ok);
    CHECK(r.first_bad_seq == 5);
}

TEST_CASE("evidence anchors: parsed strictly, found in any text") {
    CHECK(parse_anchor("12:0123456789abcdef"));
    CHECK_FALSE(parse_anchor("12:0123456789ABCDEF"));
    CHECK_FALSE(parse_anchor("0:0123456789abcdef"));
    CHECK_FALSE(parse_anchor("12:0123456789abcde"));
    CHECK_FALSE(parse_anchor("x:0123456789abcdef"));
    const std::string history =
        R"({"evidence_head":"41:00ff00ff00ff00ff"} 2026-12-07T10:00:00Z {"evidence_head":"97:abcdefabcdef0123"})"
        " 10:30:15 seq 5:0123456789abcdef0 (too long)";
    const auto found = find_anchors(history);
    REQUIRE(found.size() == 2);
    CHECK(found[0].seq == 41);
    CHECK(found[1].seq == 97);
    CHECK(found[1].hash_prefix == "abcdefabcdef0123");
}

TEST_CASE("evidence chain: the sealing key's epoch must match where the chain ends") {
    built b = build_chain(2, 2, /*seal_last=*/false);
    verify_input in = with_key(b);
    CHECK(verify(b.entries, in).ok);
    in.key_epoch = b.key_epoch + 1;  // the key moved on: a closed epoch's entries are gone
    CHECK_FALSE(verify(b.entries, in).ok);
    in.key_epoch = b.key_epoch - 1;  // an older key file put back
    const verify_report r = verify(b.entries, in);
    CHECK_FALSE(r.ok);
    CHECK_THAT(r.problem, Catch::Contains("key file was replaced"));
}
